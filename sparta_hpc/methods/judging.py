"""The baselines' extra judgments: Meta-Rewarding's meta-judge and SPPO's pairwise preferences.

Pure request builders and result assembly; the judge stage runs them on the
loaded model. Both ask for a letter (A or B) and read the probability of each
from the model's log-probabilities, asked in both orders so that the judge's
position bias cancels.
"""

from __future__ import annotations

from ..algorithm.judging import meta_judge_messages, pairwise_messages
from .pairs import meta_candidates


def meta_requests(plan: dict, responses: dict, judgments: list[dict], system: list[dict]):
    """(slots, conversations) of the meta-judge: for each answer (c, s) whose judgments disagree,
    its highest- and lowest-scored judgments compared in both orders (two conversations per slot).
    `system`: the judge's system message(s), prepended as when it judged."""
    import numpy as np

    by_slot: dict[tuple[int, int], dict[int, dict]] = {}
    for x in judgments:
        by_slot.setdefault((x["duel"], x["side"]), {})[x["round"]] = x
    slots, convs = [], []
    for (c, s), rounds in sorted(by_slot.items()):
        scores = np.array([[[np.nan if rounds[r]["parsed"] is None else rounds[r]["parsed"]
                             for r in sorted(rounds)]]])
        hi, lo = (int(v) for v in meta_candidates(scores)[0, 0])
        if hi < 0:
            continue
        instruction, response = plan["instructions"][c]["text"], responses[(c, s)]
        for first, second in ((hi, lo), (lo, hi)):
            convs.append(system + meta_judge_messages(instruction, response, rounds[first]["raw"],
                                                      rounds[second]["raw"]))
        slots.append((c, s, hi, lo))
    return slots, convs


def meta_results(slots: list[tuple[int, int, int, int]], p_first: list[float]) -> list[dict]:
    """One record per compared answer: P(the higher-scored judgment is the better one)."""
    out = []
    for n, (c, s, hi, lo) in enumerate(slots):
        a, b = p_first[2 * n], p_first[2 * n + 1]  # hi first, then lo first
        out.append({"duel": c, "side": s, "rounds": [hi, lo], "p_first": [a, b], "p_hi_better": (a + 1 - b) / 2})
    return out


def pairwise_requests(plan: dict, rows, responses: dict, system: list[dict]):
    """(ordered pairs (c, i, j), conversations): every answer of an instruction against each other
    answer, in both orders."""
    pairs, convs = [], []
    for c in rows:
        S = len(plan["authors"][c])
        for i in range(S):
            for j in range(S):
                if i != j:
                    pairs.append((c, i, j))
                    convs.append(system + pairwise_messages(plan["instructions"][c]["text"], responses[(c, i)],
                                                            responses[(c, j)]))
    return pairs, convs
