"""Text generation backends for the generate and judge stages.

`hf` (Hugging Face transformers; CPU and GPU) and `vllm` (vLLM's offline
engine; GPU nodes, or its CPU build) are imported only inside a task. Both
serve a group of members sharing one base model, take the same requests and
satisfy `ModelGroup`; `open_group` is the one place a stage gets one from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


def chat_prompts(tokenizer, conversations: list[list[dict]], prefix: str = "") -> list[str]:
    """Each conversation through the tokenizer's chat template, ready for the
    assistant's answer, which starts with `prefix` (the same text in both backends)."""
    return [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) + prefix
            for c in conversations]


@dataclass
class Generated:
    text: str
    n_tokens: int
    raw_b64: str | None = None  # what the model returned, when text.sanitize changed it (text.restore)


@dataclass
class Batch:
    """One member's prompts with that member's sampling settings."""

    member: str
    conversations: list[list[dict]]
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int
    prefix: str = ""  # prefilled start of every answer (kept in the returned text)
    top_k: int | None = None  # when sampling: keep the k likeliest tokens; None: no cut


class ModelGroup(Protocol):
    """One loaded base model serving every member of a group, each with its adapter (or none)."""

    members: list[str]
    loads: int  # base-model loads this group cost (1: one load served every member)

    def generate_all(self, batches: list[Batch], batch_size: int) -> list[list[Generated]]:
        """One completion per conversation of each batch, in order."""
        ...

    def score_all(self, members: list[str], conversations: list[list[list[dict]]], prefix: str,
                  candidates: list[str], batch_size: int) -> list[list[dict[str, float]]]:
        """Per member and conversation: log P(candidate | chat prompt + prefix) for each candidate."""
        ...


def open_group(backend: str, model: str, adapters: dict[str, str | None], *, dtype: str, engine,
               cache_dir: Path, seed: int, trust_remote_code: bool = False) -> ModelGroup:
    """The group's base model, loaded once, with every member's adapter (None: the bare base).

    `engine` (the config's `vllm` section), `cache_dir` and `seed` are the vLLM
    engine's; the HF backend seeds each batch itself. `trust_remote_code`: let the
    model folder run its own Python code (members' `trust_remote_code`; off by default).
    """
    if backend == "vllm":
        from .vllm import VLLMGroup

        return VLLMGroup(model, adapters, dtype=dtype, engine=engine, cache_dir=cache_dir, seed=seed,
                         trust_remote_code=trust_remote_code)
    from .hf import HFGroup

    return HFGroup(model, adapters, dtype=dtype, trust_remote_code=trust_remote_code)
