"""Is a method's difference from BEST INIT more than the luck of the test items? A paired bootstrap.

BEST INIT and a method's selected model answered the same test items, so the comparison is paired
by item (Koehn 2004, "Statistical significance tests for machine translation evaluation"; Berg-
Kirkpatrick, Burkett and Klein 2012, "An empirical investigation of statistical significance in
NLP"): draw the items with replacement, the same draw for both models, B = 10,000 times with a fixed
seed, and look at the mean difference delta*_b of each draw against the observed one, delta.

The p-value is the shifted-null one (Berg-Kirkpatrick et al. 2012, section 2; Efron and Tibshirani
1993, 16.4): the draws centred on delta stand for "no difference", and p is how often they lie as
far from 0 as delta does, on either side (two-sided):

    p = (1 + #{b : |delta*_b - delta| >= |delta|}) / (B + 1)

The +1's are the usual finite-B correction: B draws cannot show a p below 1 / (B + 1), and p is 1
exactly for identical scores. By hand, with numpy's Generator: scipy.stats.bootstrap (paired=True)
gives confidence intervals but no p-value, and scipy is not among this package's dependencies.

An item is what the model was asked (the sample's prompt, then its place among equal prompts), so
runs that answered the same items in another order, or some more items, still pair: the test uses
the items both models have a score for (an item without a rating is left out of a rated task's mean,
so it is left out here too) and says so when that is not every item of both.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..inputs.instructions import iter_rows

RESAMPLES = 10_000
SEED = 0
LEVELS = ((0.001, "***"), (0.01, "**"), (0.05, "*"))
_CHUNK = 2_000_000  # resampled item scores held at once (16 MB of float64)


def paired_bootstrap(base, other, resamples: int = RESAMPLES, seed: int = SEED) -> tuple[float, float]:
    """(two-sided p-value, bootstrap standard error of the mean difference) of other - base, paired
    by position: the definition in the module's docstring."""
    diff = np.asarray(other, dtype=float) - np.asarray(base, dtype=float)
    n = len(diff)
    if n < 1 or resamples < 1:
        raise ValueError(f"a paired bootstrap needs items and resamples, got {n} and {resamples}")
    delta = diff.mean()
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    step = max(1, _CHUNK // n)
    for start in range(0, resamples, step):
        rows = min(step, resamples - start)
        means[start:start + rows] = diff[rng.integers(0, n, size=(rows, n))].mean(axis=1)
    # a resample as far out as delta itself counts; the tolerance keeps rounding from deciding such ties
    tolerance = 1e-9 * max(1.0, float(np.abs(diff).max()))
    extreme = int(np.count_nonzero(np.abs(means - delta) >= abs(delta) - tolerance))
    return (1 + extreme) / (resamples + 1), float(means.std())


def item_scores(path: Path) -> dict[tuple[str, int], float] | None:
    """{item: score} of a samples file (RunPaths.eval_samples): `correct` (accuracy tasks) or `rating`
    (rated tasks; an item without one is left out); None when the file does not exist."""
    if not path.exists():
        return None
    out: dict[tuple[str, int], float] = {}
    seen: dict[str, int] = {}
    for _, sample in iter_rows(path, "the evaluation samples"):
        asked = json.dumps(sample.get("prompt", sample.get("doc_index")), sort_keys=True)
        seen[asked] = seen.get(asked, 0) + 1
        value = sample["correct"] if "correct" in sample else sample.get("rating")
        if value is not None:
            out[asked, seen[asked]] = float(value)
    return out


def paired_test(base: dict | None, other: dict | None, resamples: int = RESAMPLES, seed: int = SEED) -> dict:
    """{p, se, n_paired, note} of other against base ({item: score} each); p None, with the note
    saying why, where there is nothing to pair."""
    if base is None or other is None:
        return {"p": None, "se": None, "n_paired": 0, "note": "no per-item samples file: no test"}
    shared = sorted(set(base) & set(other))  # sorted: the same draw whatever order the files are in
    if len(shared) < 2:
        return {"p": None, "se": None, "n_paired": len(shared),
                "note": f"{len(shared)} item(s) scored for both: no test"}
    p, se = paired_bootstrap([base[k] for k in shared], [other[k] for k in shared], resamples, seed)
    note = "" if len(shared) == len(base) == len(other) else \
        f"paired on the {len(shared)} items both have a score for (BEST INIT {len(base)}, this model {len(other)})"
    return {"p": p, "se": se, "n_paired": len(shared), "note": note}


def stars(p: float | None) -> str:
    """'***' p < 0.001, '**' p < 0.01, '*' p < 0.05, else ''."""
    return next((mark for level, mark in LEVELS if p is not None and p < level), "")


def legend(split: str, resamples: int = RESAMPLES, seed: int = SEED) -> str:
    return (f"`*` p < 0.05, `**` p < 0.01, `***` p < 0.001: the difference from BEST INIT in a two-sided paired "
            f"bootstrap over the {split} items ({resamples:,} resamples, seed {seed}); no mark: p >= 0.05, or no "
            "test (see the notes); ± standard error, N items.")
