"""What a run will cost, before it runs (--dry-run, `suite plan`): tokens, DPO steps, evaluation items,
GPU-hours and disk, per iteration and for the whole run.

    from sparta_hpc.report.cost import run_cost, cost_lines
    run_cost(cfg)["total"]["gpu_hours"]

Every figure follows from the config alone (no model is loaded, no run directory read), as an upper
bound where the run decides: every answer at its cap (max_new_tokens), every duel a pair. Text lengths
are counted at CHARS_PER_TOKEN characters a token. Where a file is not readable yet (a dry run before
the data is downloaded), ASSUMED sizes stand in and `assumed` says which.

GPU-hours = tokens / cost.*_tokens_per_s_per_gpu, scaled by the GPUs a task of the stage asks for:
generate, judge, evaluate and rate tasks split one model over their GPUs (vLLM tensor parallel), so a
task on g GPUs is taken to run at one GPU's speed on g GPUs (a model g times as large); training is
data parallel, so its GPU-hours scale only with the GPUs per rank. A stage given no GPU counts as one.
"""

from __future__ import annotations

import math

from .. import methods
from ..algorithm.judging import CANDIDATES, FEW_SHOT, judge_prompt
from ..config import resources
from ..config.schema import Config, Resources
from ..eval import data as eval_data
from ..eval import plan as eval_plan
from ..rundir.paths import INITIAL
from . import disk

CHARS_PER_TOKEN = 4  # English text in a BPE vocabulary (Qwen, Llama, SmolLM): about 4 characters a token
CHAT_TOKENS = 20  # a chat template's role markers and turn ends around one exchange
# An instruction's length when its file is not readable (the paper preset's dry run before the data
# exists): docs/reproduce.md's ~100 prompt tokens per duel answer.
ASSUMED_INSTRUCTION_TOKENS = 100
ASSUMED_EVAL_PROMPT_TOKENS = 300  # an evaluation prompt (question, options, few-shot): docs/reproduce.md
# (dev, test) items of each task when its file is not readable: GSM8K's from shared/data's README
# (model_swarm: dev 200 / test 1000), the test sizes of NormAd, KCross and TruthfulQA from issue 19,
# AlpacaEval's 805 instructions; the rest ASSUMED (dev 200, test 1000). About 17,700 items: the
# ~17,000 docs/reproduce.md estimates.
ASSUMED_ITEMS = {"gsm8k": (200, 1000), "medqa": (200, 1000), "normad_country": (500, 2000),
                 "normad_value": (500, 2000), "normad_rot": (500, 2000), "kcross": (200, 1000),
                 "truthfulqa": (200, 617), "math_easy": (200, 1000), "math_medium": (200, 1000),
                 "math_hard": (200, 1000), "com2": (200, 1000), "alpaca": (200, 805)}
SCORED_TOKENS = 3  # one candidate continuation ('7}', 'A') scored from log-probs, with its separator
EVALUATOR_TEMPLATE_TOKENS = 120  # the evaluator's rating instructions around an item and an answer


def tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def instruction_tokens(cfg: Config, assumed: list[str]) -> int:
    """The mean duel instruction's tokens: measured on the instruction file when it is readable."""
    from ..inputs.instructions import load_instructions

    try:
        texts = [i.text for i in load_instructions(cfg.instructions)]
    except Exception as err:  # noqa: BLE001 - any unreadable file: fall back, and say so
        assumed.append(f"instructions: {ASSUMED_INSTRUCTION_TOKENS} tokens each ({cfg.instructions.source} not "
                       f"readable: {str(err)[:80]})")
        return ASSUMED_INSTRUCTION_TOKENS
    return math.ceil(sum(map(tokens, texts)) / max(len(texts), 1))


def gpus(r: Resources, per_rank: bool = False) -> float:
    total = max(r.nodes * r.gpus_per_node, 1)
    return max(total / (r.nodes * r.tasks_per_node), 1) if per_rank else total


def hours(prompt: float, generated: float, cfg: Config, n_gpus: float) -> float:
    c = cfg.cost
    return (prompt / c.prompt_tokens_per_s_per_gpu + generated / c.gen_tokens_per_s_per_gpu) / 3600 * n_gpus


def stage(requests: int, prompt: float, generated: float, gpu_hours: float, **more) -> dict:
    return {"requests": int(requests), "prompt_tokens": int(prompt), "generated_tokens": int(generated),
            "gpu_hours": gpu_hours, **more}


def answerers(cfg: Config) -> list[int]:
    """The members who answer and are trained: all of them (SPARTA) or the aligned one (baseline.member;
    before BEST INIT is known, the first member stands in for it)."""
    if cfg.method == "sparta":
        return list(range(len(cfg.members)))
    names = cfg.member_names()
    return [names.index(cfg.baseline.member) if cfg.baseline.member in names else 0]


def iteration_cost(cfg: Config, inst: int) -> dict:
    """generate, judge and train of one iteration."""
    n, M, members = cfg.tribe.duels_per_iteration, len(cfg.members), cfg.members
    who = answerers(cfg)
    S = methods.samples(cfg)
    answers = n * S  # SPARTA: the two duelists' answers; a baseline: its samples
    share = answers / len(who)  # answers per answering member (duelists are drawn evenly over time)

    def system(m) -> int:
        return tokens(m.system_prompt or "")

    gen_prompt = gen_out = gen_hours = 0.0
    for i in who:
        m = members[i]
        p, g = share * (inst + system(m) + CHAT_TOKENS), share * m.max_new_tokens
        gen_prompt, gen_out = gen_prompt + p, gen_out + g
        gen_hours += hours(p, g, cfg, gpus(resources.for_model(cfg, "generate", m.model)))
    answer = sum(members[i].max_new_tokens for i in who) / len(who)  # judges read answers at their cap

    jc = cfg.judge
    shots = sum(tokens(judge_prompt(q, a, jc.rubric, jc.reasoning)) + CHAT_TOKENS for q, a, _ in FEW_SHOT) \
        if jc.few_shot else 0
    template = tokens(judge_prompt("", "", jc.rubric, jc.reasoning))
    judgment_prompt = template + inst + answer + shots + CHAT_TOKENS
    if cfg.method == "sparta":
        judges = jc.panel_size or (M if cfg.reputation.duelists_judge else M - 2)
        judge_of = list(range(M))
    else:
        judges, judge_of = (1 if cfg.method in methods.POINTWISE else 0), who
    judgments = n * S * judges  # every answer scored by every judge of its instruction, once per round
    j_prompt = j_out = scored = j_hours = extra = 0.0
    per_judge = judgments / len(judge_of) if judges else 0
    for j in judge_of:
        m = members[j]
        p = per_judge * jc.rounds * (judgment_prompt + system(m))
        g = per_judge * jc.rounds * jc.max_new_tokens
        if jc.score == "expected":  # one more pass over the prompt, scoring the 10 candidates
            p += per_judge * (judgment_prompt + system(m))
            g_scored = per_judge * len(CANDIDATES) * SCORED_TOKENS
            p, scored = p + g_scored, scored + g_scored
        if cfg.method == "meta_rewarding":  # up to 2 meta-judgments per answer: instruction, answer, 2 judgments
            meta = n * S * 2
            p += meta * (judgment_prompt + 2 * jc.max_new_tokens + SCORED_TOKENS)
            extra += meta
        if cfg.method == "sppo":  # S(S-1) ordered comparisons per instruction: instruction and 2 answers
            comparisons = n * S * (S - 1)
            p += comparisons * (judgment_prompt + answer + SCORED_TOKENS)
            extra += comparisons
        j_prompt, j_out = j_prompt + p, j_out + g
        j_hours += hours(p, g, cfg, gpus(resources.for_model(cfg, "judge", m.model)))
    judge = stage(judgments * jc.rounds + extra, j_prompt, j_out, j_hours, scored_tokens=int(scored),
                  judgments=int(judgments * jc.rounds))
    out = {"generate": stage(answers, gen_prompt, gen_out, gen_hours), "judge": judge,
           "train": train_cost(cfg, inst, answer)}
    if cfg.tribe.iterations > 1 and methods.previous_iterations(cfg, 1):  # SPIN: more pairs from iteration 1 on
        out["train_later"] = train_cost(cfg, inst, answer, 1)
    return out


def pairs_per_member(cfg: Config, iteration: int = 0) -> int:
    """Upper bound of iteration t's DPO pairs (aggregate: one per duel with a valid judge and no tie;
    a baseline: one per instruction; Meta-Rewarding adds at most one judgment pair per answer; SPIN
    from iteration 1 on trains on iteration t-1's pairs too, baseline.spin_previous).
    SPARTA trains every member on all of them."""
    n = cfg.tribe.duels_per_iteration
    own = n + (n * methods.samples(cfg) if cfg.method == "meta_rewarding" else 0)
    return own * (1 + len(methods.previous_iterations(cfg, iteration)))


def dpo_steps(cfg: Config, pairs: int, r: Resources) -> int:
    """Optimizer steps as transformers' Trainer counts them: per-rank batches, accumulated, x epochs."""
    t = cfg.train
    if t.max_steps > 0:
        return t.max_steps
    if pairs == 0:
        return 0
    batches = math.ceil(pairs / (t.batch_size * r.nodes * r.tasks_per_node))
    return math.ceil(t.epochs * max(math.ceil(batches / t.gradient_accumulation_steps), 1))


def train_cost(cfg: Config, inst: int, answer: float, iteration: int = 0) -> dict:
    """Forward tokens as docs/reproduce.md counts them: chosen and rejected, policy and reference."""
    pairs, t = pairs_per_member(cfg, iteration), cfg.train
    sequence = min(t.max_length, inst + answer + CHAT_TOKENS)
    steps, fwd, gpu_hours = {}, 0.0, 0.0
    for i in answerers(cfg):
        r = resources.for_member(cfg, "train", i)
        steps[cfg.members[i].name] = dpo_steps(cfg, pairs, r)
        per_step = t.batch_size * t.gradient_accumulation_steps * r.nodes * r.tasks_per_node
        seen = min(pairs * t.epochs, steps[cfg.members[i].name] * per_step)  # max_steps may stop early
        tokens_i = seen * 2 * sequence * 2
        fwd += tokens_i
        gpu_hours += tokens_i / cfg.cost.train_tokens_per_s_per_gpu / 3600 * gpus(r, per_rank=True)
    return {"pairs_per_member": pairs, "steps_per_member": steps, "forward_tokens": int(fwd), "gpu_hours": gpu_hours}


def task_sizes(cfg: Config, task: str, assumed: list[str]) -> dict[str, tuple[int, int]]:
    """{split: (items, prompt tokens per item)} of one task: from its file, else ASSUMED."""
    spec, ev, out = eval_data.get_spec(task), cfg.eval, {}
    for split in eval_plan.splits(cfg):
        try:
            path = eval_plan.task_file(cfg, task)
            got = eval_data.read_split(spec, path, split, ev.limit)
            icl = tokens(got.icl_prompt)
            texts = [eval_data.doc_text(spec, row) for row in got.rows]
            out[split] = (len(texts), math.ceil(sum(map(tokens, texts)) / len(texts)) + icl + CHAT_TOKENS)
        except Exception as err:  # noqa: BLE001 - a dry run before the data exists: assume, and say so
            n = ASSUMED_ITEMS[task][split == "test"]
            n = min(n, ev.limit) if ev.limit else n
            assumed.append(f"eval {task}.{split}: {n} items of {ASSUMED_EVAL_PROMPT_TOKENS} prompt tokens "
                           f"(file not readable: {str(err)[:60]})")
            out[split] = (n, ASSUMED_EVAL_PROMPT_TOKENS)
    return out


def answered(cfg: Config, split: str, point: int) -> int:
    """How many members answer `split` at `point`: every member at the start (BEST INIT is chosen among
    them), then the trained ones; with eval.test selected, test only by the one member per task that dev
    selects at the start and the one it selects after (counted for one point each: see eval_cost)."""
    if split == "test" and cfg.eval.test == "selected":
        return 1
    return len(cfg.members) if point == INITIAL else len(answerers(cfg))


def eval_cost(cfg: Config, assumed: list[str]) -> dict:
    """Every evaluation point's evaluate and rate stages (score is one CPU job)."""
    points, ev = eval_plan.eval_points(cfg), cfg.eval
    items = {"dev": 0, "test": 0}
    ev_prompt = ev_out = ev_hours = rate_prompt = rate_out = rate_hours = rated = 0.0
    if not points:
        return {"points": 0, "items": items, "evaluate": stage(0, 0, 0, 0.0), "rate": stage(0, 0, 0, 0.0),
                "gpu_hours": 0.0}
    members, evaluator = cfg.members, ev.evaluator
    system = sum(tokens(m.system_prompt or "") for m in members) / len(members)
    model_gpus = sum(gpus(resources.for_model(cfg, "evaluate", m.model)) for m in members) / len(members)
    for task in ev.tasks:
        spec = eval_data.get_spec(task)
        budget = min(spec.max_new_tokens, ev.max_new_tokens or spec.max_new_tokens)
        for split, (n, prompt) in task_sizes(cfg, task, assumed).items():
            if split == "test" and ev.test == "selected":
                # BEST INIT at the start (eval.initial) and the selected model at one point after it
                where = [INITIAL] * (INITIAL in points) + [points[-1]]
            else:
                where = points
            answers = sum(n * answered(cfg, split, p) for p in where)
            items[split] += answers
            p, g = answers * (prompt + system), answers * budget
            ev_prompt, ev_out, ev_hours = ev_prompt + p, ev_out + g, ev_hours + hours(p, g, cfg, model_gpus)
            if spec.kind == "rated":  # the evaluator reads the item and the answer, writes a score
                rp = answers * (EVALUATOR_TEMPLATE_TOKENS + prompt + budget + CHAT_TOKENS)
                rg = answers * evaluator.max_new_tokens
                if evaluator.score == "expected":
                    rp += answers * (EVALUATOR_TEMPLATE_TOKENS + prompt + budget + len(CANDIDATES) * SCORED_TOKENS)
                rated += answers
                rate_prompt, rate_out = rate_prompt + rp, rate_out + rg
                rate_hours += hours(rp, rg, cfg, gpus(cfg.cluster.rate))
    return {"points": len(points), "items": items,
            "evaluate": stage(items["dev"] + items["test"], ev_prompt, ev_out, ev_hours),
            "rate": stage(rated, rate_prompt, rate_out, rate_hours), "gpu_hours": ev_hours + rate_hours}


def run_cost(cfg: Config) -> dict:
    """The whole estimate: {"iterations", "per_iteration": {generate, judge, train, gpu_hours},
    "eval": {points, items: {dev, test}, evaluate, rate, gpu_hours}, "total": {prompt_tokens,
    generated_tokens, train_tokens, eval_items, gpu_hours}, "disk": disk.per_iteration's bytes,
    "assumed": [what was assumed, not read]}. Stages: {requests, prompt_tokens, generated_tokens,
    gpu_hours} (judge also scored_tokens, judgments); train: {pairs_per_member, steps_per_member:
    {member: steps}, forward_tokens, gpu_hours}: iteration 0's, and where iterations 1.. train on more
    pairs (SPIN's iteration t-1 pairs) theirs as per_iteration["train_later"]."""
    assumed: list[str] = []
    inst = instruction_tokens(cfg, assumed)
    it = iteration_cost(cfg, inst)
    it["gpu_hours"] = it["generate"]["gpu_hours"] + it["judge"]["gpu_hours"] + it["train"]["gpu_hours"]
    ev = eval_cost(cfg, assumed)
    T = cfg.tribe.iterations
    later = it.get("train_later", it["train"])  # iterations 1..T-1 (SPIN: with iteration t-1's pairs)
    total = {"prompt_tokens": T * (it["generate"]["prompt_tokens"] + it["judge"]["prompt_tokens"])
             + ev["evaluate"]["prompt_tokens"] + ev["rate"]["prompt_tokens"],
             "generated_tokens": T * (it["generate"]["generated_tokens"] + it["judge"]["generated_tokens"])
             + ev["evaluate"]["generated_tokens"] + ev["rate"]["generated_tokens"],
             "train_tokens": it["train"]["forward_tokens"] + (T - 1) * later["forward_tokens"],
             "eval_items": ev["items"]["dev"] + ev["items"]["test"],
             "gpu_hours": T * it["gpu_hours"] + (T - 1) * (later["gpu_hours"] - it["train"]["gpu_hours"])
             + ev["gpu_hours"]}
    return {"iterations": T, "instruction_tokens": inst, "per_iteration": it, "eval": ev, "total": total,
            "disk": disk.per_iteration(cfg), "assumed": assumed}


def big(n: float) -> str:
    """1234 -> 1.2 K, 5.6 M: token counts at a glance."""
    for unit, size in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f}"


def cost_lines(cfg: Config) -> list[str]:
    """The estimate as the dry run prints it."""
    c = run_cost(cfg)
    it, ev, tot, k = c["per_iteration"], c["eval"], c["total"], cfg.cost
    gen, judge, train = it["generate"], it["judge"], it["train"]
    steps = sorted(set(train["steps_per_member"].values()))
    lines = [f"cost estimate (upper bounds; {__name__}; throughputs per GPU ASSUMED unless set: cost.* = "
             f"{k.gen_tokens_per_s_per_gpu:g} generated, {k.prompt_tokens_per_s_per_gpu:g} prompt, "
             f"{k.train_tokens_per_s_per_gpu:g} DPO tokens/s):",
             f"  per iteration: generate {gen['requests']} answers, {big(gen['prompt_tokens'])} prompt + "
             f"{big(gen['generated_tokens'])} generated tokens, {gen['gpu_hours']:.2f} GPU-h",
             f"                 judge {judge['judgments']} judgments, {big(judge['prompt_tokens'])} prompt + "
             f"{big(judge['generated_tokens'])} generated" + (f" ({big(judge['scored_tokens'])} scored)"
                                                             if judge["scored_tokens"] else "")
             + f" tokens, {judge['gpu_hours']:.2f} GPU-h",
             f"                 train {train['pairs_per_member']} pairs x {len(train['steps_per_member'])} member(s), "
             f"{'/'.join(map(str, steps))} optimizer steps each, {big(train['forward_tokens'])} forward tokens, "
             f"{train['gpu_hours']:.2f} GPU-h"]
    if "train_later" in it:  # SPIN: iteration t >= 1 trains on iteration t-1's pairs too
        later = it["train_later"]
        later_steps = "/".join(map(str, sorted(set(later["steps_per_member"].values()))))
        lines.append(f"                 train from iteration 1 on: {later['pairs_per_member']} pairs (with iteration "
                     f"t-1's, baseline.spin_previous), {later_steps} optimizer steps each, "
                     f"{big(later['forward_tokens'])} forward tokens, {later['gpu_hours']:.2f} GPU-h")
    lines += [f"  evaluation ({ev['points']} point(s), test: {cfg.eval.test}): {ev['items']['dev']} dev + "
              f"{ev['items']['test']} test member-items, {big(ev['evaluate']['prompt_tokens'])} prompt + "
              f"{big(ev['evaluate']['generated_tokens'])} generated tokens"
              + (f"; rate {ev['rate']['requests']} answers" if ev["rate"]["requests"] else "")
              + f", {ev['gpu_hours']:.2f} GPU-h",
              f"  whole run ({c['iterations']} iterations): {big(tot['prompt_tokens'])} prompt + "
              f"{big(tot['generated_tokens'])} generated + {big(tot['train_tokens'])} DPO tokens, "
              f"{tot['eval_items']} evaluation items, {tot['gpu_hours']:.1f} GPU-h"]
    lines += [f"  assumed: {a}" for a in c["assumed"][:4]]
    if len(c["assumed"]) > 4:
        lines.append(f"  assumed: ... and {len(c['assumed']) - 4} more")
    return lines
