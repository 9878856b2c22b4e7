"""The single-model methods' preference pairs as TRL rows, built from the iteration's archive.

Rows are TRL's conversational format (prompt / chosen / rejected message lists;
the member's system prompt is added by its training job) plus where each pair
came from. `kind` is "response" (answers to the instruction) or "judge"
(Meta-Rewarding: two of the model's own judgments of one answer, the prompt
being the judge prompt it answered).
"""

from __future__ import annotations

import numpy as np

from ..algorithm.judging import judge_messages
from ..config.schema import Config
from ..inputs.text import clip
from .pairs import best_vs_worst, judge_pairs, length_controlled, spin_pairs, sppo_pairs


def _row(prompt: list[dict], chosen: str, rejected: str, **info) -> dict:
    return {"prompt": prompt, "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}], **info}


def baseline_rows(cfg: Config, archive: dict, names: list[str]) -> list[dict]:
    """Every pair of the iteration, in instruction order (judge pairs after response pairs)."""
    text, author = archive["responses/text"], archive["responses/author"]
    instructions, references = archive["instructions/text"], archive["instructions/reference"]
    policy = int(author[0, 0])
    who = {"chosen_member": names[policy], "rejected_member": names[policy]}

    def response_row(c: int, i: int | None, j: int, s_i: float, s_j: float) -> dict:
        chosen = references[c] if i is None else text[c, i]  # SPIN: the reference answer
        return _row([{"role": "user", "content": instructions[c]}], chosen, text[c, j], duel=c, kind="response",
                    chosen_slot=-1 if i is None else i, rejected_slot=j, score_chosen=s_i, score_rejected=s_j, **who)

    if cfg.method == "spin":  # chosen: the reference; rejected: the model's own sample (labels 1 / 0)
        return [response_row(c, None, 0, 1.0, 0.0) for c in spin_pairs(list(references), list(text[:, 0]))]
    if cfg.method == "sppo":  # scores: the answers' estimated win rates
        return [response_row(c, i, j, wi, wj) for c, i, j, wi, wj in sppo_pairs(archive["comparisons/prob"])]
    own = archive["judgments/score"][:, policy, :]  # (n, S): the model's mean score of each of its answers
    rho = cfg.baseline.length_control
    if cfg.method == "meta_rewarding" and rho is not None:  # the shortest of the top tier is chosen
        lengths = np.vectorize(lambda t: len(str(t).split()))(text)
        chosen_rejected = length_controlled(own, lengths, rho)
    else:
        chosen_rejected = best_vs_worst(own)
    rows = [response_row(c, i, j, si, sj) for c, i, j, si, sj in chosen_rejected]
    if cfg.method == "meta_rewarding":
        raw, parsed = archive["judgments/raw"][:, policy], archive["judgments/parsed"][:, policy]
        for c, s, a, b, p in judge_pairs(parsed, archive["meta/rounds"], archive["meta/p_hi_better"]):
            # the prompt the judge answered: the answer as it was shown (cut at judge.max_response_chars)
            prompt = judge_messages(instructions[c], clip(text[c, s], cfg.judge.max_response_chars), cfg.judge.few_shot,
                                    cfg.judge.rubric, cfg.judge.reasoning)
            rows.append(_row(prompt, raw[c, s, a], raw[c, s, b], duel=c, kind="judge", chosen_slot=s,
                             rejected_slot=s, chosen_round=a, rejected_round=b, score_chosen=float(parsed[c, s, a]),
                             score_rejected=float(parsed[c, s, b]), meta_probability=p, **who))
    return rows


def counts(rows: list[dict], n: int) -> dict:
    """What the summary table shows of a single-model iteration."""
    kinds = [r["kind"] for r in rows]
    return {"instructions": n, "pairs": kinds.count("response"), "judge_pairs": kinds.count("judge"),
            "dropped": n - kinds.count("response"),
            "mean_margin": float(np.mean([r["score_chosen"] - r["score_rejected"] for r in rows])) if rows else None}
