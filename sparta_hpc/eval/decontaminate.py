"""Decontamination: duel instructions that hold an evaluation item, wrapped or not.

leakage.py refuses an instruction that *is* an evaluation item (whole texts equal). An instruction
that wraps one passes it: the authors' MATH pool appends "Let's solve this problem step by step.",
a MedQA or KCross question may come with its options appended, TruthfulQA's as "Q: ... A: ...", a
NormAd story inside "Please justify: ... Choose from:". Here each item's identifying part
(prepare/clean.eval_key: the question, the NormAd story, the KCross constraints with their options,
the MATH problem; docs/data.md) is looked for inside every instruction, on words normalised as
leakage.normalize_text does (NFKC, lower case, punctuation and spacing ignored):

- an item of NGRAM (13) words or more matches an instruction that shares any of its identifying
  13-grams, as lm-eval's decontamination does. A 13-gram found in two or more items of the task's
  file (dev and test) identifies none of them: it is the task's fixed prompt (KCross's "pick the
  correct answer for each blank that satisfies all the given constraints", COM2's instructions), or
  a phrase the task repeats. Matching on it would remove every clean instruction written in that
  template, and a dev item in the pool (KCross's clean pool is its dev split) would match a test
  item through the constraints they share;
- a shorter item, or one with no identifying 13-gram, matches an instruction that contains its
  words, in order (whole words: "cat" is not in "concatenate");
- an item of fewer than MIN_CONTAINED words matches only an instruction whose identifying part
  (clean.instruction_key, the authors' wrappers taken off) is exactly it: "compute sqrt 2" inside a
  longer problem is another problem.

The risk kept: two unrelated long texts can share a 13-gram by chance (a stock medical phrase after
a rare word). lm-eval accepts it at n = 13 and so does this; the counts recorded say how many went.

The items matched are those of the split a run reports: test (dev where eval.split is dev only).
Dev items stay in the pool as `data prepare` leaves them (docs/data.md: KCross's clean pool is its
dev split; GSM8K's dev is GSM8K train), and the exact check still refuses a verbatim one.

Not lm-eval's Janitor: the driver runs on a login node without the pipeline extra that brings
lm-eval, and janitor.py prints a traceback on import where its C++ helper is not built; it also
deletes punctuation where normalize_text makes it a space ("x^2+1" would become one word).
"""

from __future__ import annotations

from collections import Counter

from ..config.schema import Config
from ..errors import ConfigError, EvalDataError
from ..inputs.clean import MATH_SUFFIX, eval_key, instruction_key
from . import data
from . import plan as eval_plan
from .leakage import normalize_text

NGRAM = 13
MIN_CONTAINED = 4
SHOWN = 3  # example instruction ids per task in a refusal and in the record
_END = ""  # a trie node's key for the items that end there (no word is empty)


def words(text: str) -> list[str]:
    # the authors glue MATH_SUFFIX to the problem with no space ("...of $x$Let's"): a space keeps
    # the problem's last word whole
    return normalize_text(text.replace(MATH_SUFFIX, " " + MATH_SUFFIX)).split()


def windows(ws: list[str]):
    """Every run of NGRAM consecutive words (zip builds the tuples in C: a pool has millions)."""
    return zip(*(ws[k:] for k in range(NGRAM)))


class Index:
    """The identifying parts of the evaluation items, for one pass over the pool; an item is (task, k),
    k its row in the matched split."""

    def __init__(self) -> None:
        self.grams: dict[tuple[str, ...], list[tuple[str, int]]] = {}  # identifying 13-gram -> items
        self.trie: dict = {}  # the words of the items matched by containment
        self.exact: dict[str, dict[tuple[str, ...], list[int]]] = {}  # task -> tiny item's words -> rows

    def add(self, task: str, items: list[str], every: list[str]) -> None:
        """`items`: the identifying texts of the matched split; `every`: those of every item of the
        task's file (dev and test), which say what is shared."""
        seen = Counter(g for text in every for g in set(windows(words(text))))
        for k, text in enumerate(items):
            ws = words(text)
            own = [g for g in set(windows(ws)) if seen[g] < 2]
            for g in own:
                self.grams.setdefault(g, []).append((task, k))
            if own or not ws:
                continue
            if len(ws) < MIN_CONTAINED:
                self.exact.setdefault(task, {}).setdefault(tuple(ws), []).append(k)
                continue
            node = self.trie
            for w in ws:
                node = node.setdefault(w, {})
            node.setdefault(_END, []).append((task, k))

    def match(self, text: str) -> set[tuple[str, int]]:
        """The items that `text` holds."""
        ws, found = words(text), set()
        for g in windows(ws):
            if g in self.grams:
                found.update(self.grams[g])
        for i in [i for i, w in enumerate(ws) if w in self.trie]:
            node, j = self.trie[ws[i]], i + 1
            while node is not None:
                found.update(node.get(_END, ()))
                node, j = (node.get(ws[j]) if j < len(ws) else None), j + 1
        for task, tiny in self.exact.items():
            found.update((task, k) for k in tiny.get(tuple(words(instruction_key(task, text))), ()))
        return found


def matched_split(cfg: Config) -> str:
    return "test" if "test" in eval_plan.splits(cfg) else "dev"


def build_index(cfg: Config, missing: list[str] | None = None) -> tuple[Index, dict[str, int], dict[str, str]]:
    """(the index, {task: items in the matched split}, {task: why it was not checked}). `missing`: a dry
    run, which notes a task whose file is not there yet instead of refusing."""
    index, sizes, unchecked, split = Index(), {}, {}, matched_split(cfg)
    for task in cfg.eval.tasks:
        path = eval_plan.task_file(cfg, task)
        if not path.exists():
            why = f"no file at {path} yet (sparta-hpc data prepare writes DIR/eval)"
            if missing is None:
                raise ConfigError(f"instructions.decontaminate: {task}: {why}")
            missing.append(f"instructions.decontaminate: the pool is not checked against {task}: {why}")
            unchecked[task] = why
            continue
        try:
            splits = data.read_splits(data.get_spec(task), path)
        except EvalDataError as err:
            raise ConfigError(f"instructions.decontaminate: {err}") from None
        keys = {name: [eval_key(task, row) for row in part.rows] for name, part in splits.items()}
        index.add(task, keys.get(split, []), [key for part in keys.values() for key in part])
        sizes[task] = len(keys.get(split, []))
    return index, sizes, unchecked


def decontaminate(cfg: Config, instructions: list, missing: list[str] | None = None) -> tuple[list, dict]:
    """(the pool less the instructions that hold an item of the matched split, the record of it).
    instructions.decontaminate: remove drops them, refuse raises ConfigError naming them, off keeps all."""
    mode = cfg.instructions.decontaminate
    report = {"mode": mode, "source": cfg.instructions.source, "pool_size": len(instructions), "removed": 0}
    if mode == "off" or not cfg.eval.tasks:
        return instructions, {**report, "tasks": {}}
    index, sizes, unchecked = build_index(cfg, missing)
    hits = [index.match(it.text) for it in instructions]
    tasks = {}
    for task, n in sizes.items():
        which = [i for i, found in enumerate(hits) if any(t == task for t, _ in found)]
        tasks[task] = {"items": n, "items_found": len({k for found in hits for t, k in found if t == task}),
                       "instructions": len(which), "examples": [instructions[i].id for i in which[:SHOWN]]}
    report.update(split=matched_split(cfg), ngram=NGRAM, matched=sum(map(bool, hits)), tasks=tasks,
                  not_checked=unchecked)
    if report["matched"] and mode == "refuse":
        raise ConfigError(refusal(report))
    kept = [it for it, found in zip(instructions, hits) if not found]
    if not kept:
        raise ConfigError(f"instructions.decontaminate: every one of the {len(instructions)} instructions of "
                          f"{report['source']} holds an evaluation item ({counts(report)}); use a clean pool "
                          "(sparta-hpc data prepare), or instructions.decontaminate: off for a run that "
                          "knowingly duels on them (the authors' pools)")
    report["removed"] = len(instructions) - len(kept)
    return kept, report


def counts(report: dict) -> str:
    """'gsm8k 2 instructions (2 of 25 test items; e.g. ids 3, 7), ...' for the tasks that matched."""
    return ", ".join(f"{task} {c['instructions']} instruction(s) ({c['items_found']} of {c['items']:,} "
                     f"{report['split']} items; e.g. ids {', '.join(map(str, c['examples']))})"
                     for task, c in report["tasks"].items() if c["instructions"]) or "none"


def refusal(report: dict) -> str:
    return (f"instructions.decontaminate: refuse: {report['matched']} of the {report['pool_size']} instructions of "
            f"{report['source']} hold {report['split']} items of the evaluation tasks (their identifying part: a "
            f"shared {NGRAM}-gram, or the whole of a short one): {counts(report)}. Remove them from the file "
            "(sparta-hpc data prepare builds clean pools), or set instructions.decontaminate: remove to leave "
            "them out of the duels (each iteration's plan.json and the events record the counts)")


def report_lines(report: dict | None) -> list[str]:
    """What a dry run prints and the plan stage logs."""
    if report is None:
        return ["decontamination: not checked (no instruction file yet)"]
    if report["mode"] == "off":
        return ["decontamination: off (instructions.decontaminate); only verbatim evaluation items are refused"]
    if "split" not in report:
        return ["decontamination: no evaluation tasks (eval.tasks) to check the pool against"]
    verb = "removed" if report["mode"] == "remove" else "held"
    lines = [f"decontamination ({report['mode']}; {report['split']} items, a shared identifying {NGRAM}-gram or "
             f"containment): {report['matched']} of {report['pool_size']} instructions {verb}"
             + (f": {counts(report)}" if report["matched"] else "")]
    lines += [f"  not checked against {task}: {why}" for task, why in report["not_checked"].items()]
    return lines
