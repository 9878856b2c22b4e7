"""The per-iteration HDF5 archive (layout: docs/archive.md). All h5py code lives here.

Only one process ever writes an archive (gather creates it, aggregate adds
to a copy that replaces it), and always to a temp file that is renamed: HDF5
on Lustre/NFS must never see two writers, and a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from ..algorithm.reputation import IterationResult, Ratings
from .files import disk_errors

STR = h5py.string_dtype(encoding="utf-8")
LAYOUT_VERSION = 1


def _strings(values) -> np.ndarray:
    return np.array(values, dtype=object)


def _write_ratings(group: h5py.Group, ratings: Ratings) -> None:
    group.create_dataset("rating", data=ratings.rating)
    group.create_dataset("deviation", data=ratings.deviation)
    group.create_dataset("history", data=_strings([json.dumps(h) for h in ratings.history]), dtype=STR)


def read_ratings(group: h5py.Group) -> Ratings:
    return Ratings(group["rating"][()], group["deviation"][()],
                   [json.loads(h) for h in group["history"].asstr()[()]])


@contextlib.contextmanager
def _replacing(path: Path, before_replace: Callable[[Path], None] | None = None):
    """Yield a temp name next to `path`, then rename it over `path`: a reader never sees half a file.
    A failure (a full disk) removes the temp file and names `path`; `before_replace(tmp)` runs
    on the finished temp file just before the rename (aggregate records it there)."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with disk_errors(path):
            yield tmp
        if before_replace is not None:
            before_replace(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_gathered(path: Path, *, attrs: dict, plan: dict, responses: dict, judgments: dict,
                   ratings_before: Ratings) -> None:
    """Create the archive from the plan and the gathered shard contents (arrays built by gather)."""
    with _replacing(path) as tmp, h5py.File(tmp, "w") as f:
        f.attrs["layout_version"] = LAYOUT_VERSION
        for key, value in attrs.items():
            f.attrs[key] = value
        ins = f.create_group("instructions")
        rows = plan["instructions"]
        ins.create_dataset("index", data=np.array([r["index"] for r in rows], dtype=np.int64))
        for key in ("id", "text", "reference"):
            ins.create_dataset(key, data=_strings([r[key] for r in rows]), dtype=STR)
        if plan["method"] == "sparta":  # the duelists: slots 0 and 1 of each instruction
            d = f.create_group("duels")
            d.create_dataset("a", data=responses["author"][:, 0])
            d.create_dataset("b", data=responses["author"][:, 1])
        r = f.create_group("responses")
        r.create_dataset("text", data=responses["text"], dtype=STR)
        r.create_dataset("n_tokens", data=responses["n_tokens"])
        r.create_dataset("author", data=responses["author"])
        j = f.create_group("judgments")
        j.create_dataset("raw", data=judgments["raw"], dtype=STR, compression="gzip")
        for key in ("parsed", "expected", "score"):
            j.create_dataset(key, data=judgments[key])
        if judgments.get("logprobs") is not None:
            j.create_dataset("logprobs", data=judgments["logprobs"])
        j.attrs["score_kind"] = judgments["score_kind"]
        for group in ("meta", "comparisons"):  # Meta-Rewarding's meta-judgments, SPPO's preferences
            if group in judgments:
                g = f.create_group(group)
                for key, value in judgments[group].items():
                    g.create_dataset(key, data=value)
        _write_ratings(f.create_group("ratings_before"), ratings_before)


def read_ratings_from(path: Path, group: str = "ratings_before") -> Ratings:
    with h5py.File(path, "r") as f:
        return read_ratings(f[group])


def read_judged(path: Path) -> tuple[np.ndarray, np.ndarray, Ratings]:
    """(duels (n, 2), scores (n, M, 2), ratings before) for aggregation."""
    with h5py.File(path, "r") as f:
        duels = np.stack([f["duels/a"][()], f["duels/b"][()]], axis=1)
        return duels, f["judgments/score"][()], read_ratings(f["ratings_before"])


def _copy(path: Path, tmp: Path) -> Path:
    shutil.copyfile(path, tmp)
    return tmp


def write_pairs(path: Path, rows: list[dict], before_replace: Callable[[Path], None] | None = None) -> None:
    """A single-model method's preference pairs: numeric columns and each TRL row as JSON (to a
    copy, then rename). Its ratings do not move, so there is nothing else to add."""
    with _replacing(path, before_replace) as tmp, h5py.File(_copy(path, tmp), "a") as f:
        if "pairs" in f:  # a rerun after a crash between rename and marker
            del f["pairs"]
        p = f.create_group("pairs")
        p.create_dataset("duel", data=np.array([r["duel"] for r in rows], dtype=np.int64))
        for key in ("score_chosen", "score_rejected"):
            p.create_dataset(key, data=np.array([r[key] for r in rows], dtype=float))
        p.create_dataset("kind", data=_strings([r["kind"] for r in rows]), dtype=STR)
        p.create_dataset("json", data=_strings([json.dumps(r) for r in rows]), dtype=STR)


def write_aggregated(path: Path, result: IterationResult,
                     before_replace: Callable[[Path], None] | None = None) -> None:
    """Add weighted scores, ratings after and the preference pairs (to a copy, then rename)."""
    with _replacing(path, before_replace) as tmp, h5py.File(_copy(path, tmp), "a") as f:
        for name in ("weighted_scores", "ratings_after", "pairs"):
            if name in f:  # a rerun after a crash between rename and marker
                del f[name]
        w = f.create_group("weighted_scores")
        w.create_dataset("update", data=result.update_scores)
        w.create_dataset("final", data=result.final_scores)
        w.create_dataset("n_judges", data=result.n_judges)
        w.create_dataset("rating_change", data=result.changes)
        _write_ratings(f.create_group("ratings_after"), result.ratings)
        p = f.create_group("pairs")
        p.create_dataset("duel", data=result.pair_duels.astype(np.int64))
        p.create_dataset("chosen", data=result.pairs[:, 0].astype(np.int64))
        p.create_dataset("rejected", data=result.pairs[:, 1].astype(np.int64))
        p.create_dataset("score_chosen", data=result.pair_scores[:, 0])
        p.create_dataset("score_rejected", data=result.pair_scores[:, 1])


def read_archive(path: Path) -> dict:
    """The whole archive as plain numpy arrays and lists (for export, tests and figures)."""
    out: dict = {}
    with h5py.File(path, "r") as f:
        out["attrs"] = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                out[name] = obj.asstr()[()] if obj.dtype == STR or h5py.check_string_dtype(obj.dtype) else obj[()]
        f.visititems(visit)
    return out


def pair_rows(archive: dict, names: list[str]) -> list[dict]:
    """The preference pairs of a `read_archive` dict in TRL's conversational format, with their duel,
    members and weighted scores (the member's system prompt is added by its training job)."""
    if "pairs/json" in archive:  # a single-model method wrote its rows whole
        return [json.loads(x) for x in archive["pairs/json"]]
    rows = []
    for c, chosen, rejected, s_c, s_r in zip(archive["pairs/duel"], archive["pairs/chosen"],
                                             archive["pairs/rejected"], archive["pairs/score_chosen"],
                                             archive["pairs/score_rejected"]):
        side_chosen = 0 if archive["duels/a"][c] == chosen else 1
        text = archive["responses/text"][c]
        rows.append({
            "prompt": [{"role": "user", "content": archive["instructions/text"][c]}],
            "chosen": [{"role": "assistant", "content": text[side_chosen]}],
            "rejected": [{"role": "assistant", "content": text[1 - side_chosen]}],
            "duel": int(c), "kind": "response", "chosen_member": names[chosen], "rejected_member": names[rejected],
            "score_chosen": float(s_c), "score_rejected": float(s_r),
        })
    return rows
