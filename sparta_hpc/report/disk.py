"""How much disk an iteration needs, estimated before it runs (--dry-run), on scratch (the run
directory) and in long-term storage (run.archive_dir).

Sizes come from the config and each base model's config.json (an adapter: r x (in + out) of every
LoRA-wrapped matrix, saved in fp32); texts from the members' max_new_tokens at about 4 bytes a token,
as JSON and again in the HDF5 archive. A checkpoint holds the adapter, Adam's two moments and, under
DeepSpeed, an fp32 master copy and the engine's own shards: about 4 adapters. They stay on scratch
until the member's adapter is final (train.keep_checkpoints: false deletes them then).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..config.schema import Config

BYTES_PER_TOKEN = 4  # of text, in UTF-8 JSON
JUDGMENT_BYTES = 300  # one judgment's record in a judge shard (raw text, parsed and expected score, log-probs)
CHECKPOINT_ADAPTERS = 4  # a checkpoint is about this many adapters (weights, Adam's m and v, fp32 master)


def lora_shapes(model: str, modules: list[str]) -> list[tuple[int, int]] | None:
    """(in, out) of each matrix a LoRA on `modules` wraps; None without the model's config.json."""
    try:
        c = json.loads(Path(model, "config.json").read_text())
    except (OSError, ValueError):
        return None
    c = c.get("text_config", c)
    try:
        h, layers = c["hidden_size"], c["num_hidden_layers"]
        heads = c["num_attention_heads"]
    except KeyError:
        return None
    head_dim = c.get("head_dim") or h // heads
    kv = (c.get("num_key_value_heads") or heads) * head_dim
    inter = c.get("intermediate_size", 4 * h)
    dims = {"q_proj": (h, heads * head_dim), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (heads * head_dim, h),
            "gate_proj": (h, inter), "up_proj": (h, inter), "down_proj": (inter, h)}
    return [dims[m] for m in modules if m in dims] * layers


def adapter_bytes(cfg: Config, model: str) -> int | None:
    shapes = lora_shapes(model, list(cfg.train.lora_target_modules))
    if shapes is None:
        return None
    return sum(cfg.train.lora_r * (i + o) for i, o in shapes) * 4


def human(n: float | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def per_iteration(cfg: Config) -> dict:
    """{scratch, checkpoints, archive: bytes per iteration (None: a model folder is not there yet)}."""
    n, m = cfg.tribe.duels_per_iteration, len(cfg.members)
    answer = sum(mem.max_new_tokens for mem in cfg.members) / m * BYTES_PER_TOKEN
    judgments = n * 2 * (cfg.judge.panel_size or m - 2) * cfg.judge.rounds
    texts = n * 2 * answer + judgments * JUDGMENT_BYTES  # the shards, and the archive again
    adapters = [adapter_bytes(cfg, mem.model) for mem in cfg.members]
    known = None not in adapters
    adapter_total = sum(adapters) if known else None
    pairs = n * 2 * answer
    scratch = 2 * texts + pairs + (adapter_total or 0)
    checkpoints = adapter_total * CHECKPOINT_ADAPTERS if known else None
    archive = texts + pairs + (adapter_total or 0)
    return {"scratch": scratch if known else None, "checkpoints": checkpoints,
            "archive": archive if known else None, "adapter": max(adapters) if known else None}


def disk_lines(cfg: Config) -> list[str]:
    est = per_iteration(cfg)
    kept = "kept (train.keep_checkpoints)" if cfg.train.keep_checkpoints else "deleted once the adapter is final"
    where = cfg.run.archive_dir or "not copied (run.archive_dir unset)"
    lines = [f"disk per iteration (estimate: {__name__}): scratch {human(est['scratch'])} + checkpoints "
             f"{human(est['checkpoints'])} while training ({kept}); long-term copy {human(est['archive'])} -> {where}",
             f"  whole run ({cfg.tribe.iterations} iterations): scratch "
             f"{human(est['scratch'] and est['scratch'] * cfg.tribe.iterations)}, long-term "
             f"{human(est['archive'] and est['archive'] * cfg.tribe.iterations)}"]
    if est["scratch"] is None:
        lines.append("  (adapter sizes unknown until the models' folders exist: their config.json gives the shapes)")
    return lines
