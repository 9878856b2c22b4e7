"""Text generation backends for the generate and judge stages.

`hf` (Hugging Face transformers; CPU and GPU) and `vllm` (vLLM's offline
engine; GPU nodes, or its CPU build) are imported only inside a task. Both
serve a group of members sharing one base model and take the same requests.
"""

from __future__ import annotations

from dataclasses import dataclass


def chat_prompts(tokenizer, conversations: list[list[dict]], prefix: str = "") -> list[str]:
    """Each conversation through the tokenizer's chat template, ready for the
    assistant's answer, which starts with `prefix` (the same text in both backends)."""
    return [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) + prefix
            for c in conversations]


@dataclass
class Generated:
    text: str
    n_tokens: int


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
