"""Leakage check: training instructions that are also evaluation items.

SPARTA's duels draw instructions from each task's training split; an
instruction that is an evaluation item verbatim (up to case, spacing and
punctuation) inflates that task's score. The PAPER notes such contamination
in the authors' TruthfulQA training prompts. Exact match after normalization
is deliberately simple: cheap on 10^5 x 10^4 texts, and every hit is certain.
"""

from __future__ import annotations

import functools
import string
import sys
import unicodedata
from collections.abc import Sequence


@functools.cache
def _punctuation() -> dict[int, str]:
    """ASCII punctuation (symbols such as $ + ^ included) and every Unicode punctuation character, to a
    space: one str.translate instead of a category look-up per character (decontamination normalises
    every instruction of a pool). Built once, in about a second."""
    table = {ord(ch): " " for ch in string.punctuation}
    table.update((cp, " ") for cp in range(sys.maxunicode + 1) if unicodedata.category(chr(cp)).startswith("P"))
    return table


def normalize_text(s: str) -> str:
    """Lowercase, strip punctuation (ASCII and Unicode), collapse whitespace."""
    return " ".join(unicodedata.normalize("NFKC", s).lower().translate(_punctuation()).split())


def overlap(instructions: Sequence[str], docs_texts: Sequence[str]) -> list[tuple[int, int]]:
    """Every (instruction index, doc index) whose texts are equal after `normalize_text`, sorted.

    Texts that normalize to nothing (only punctuation or spaces) never match.
    """
    by_text: dict[str, list[int]] = {}
    for j, text in enumerate(docs_texts):
        key = normalize_text(text)
        if key:
            by_text.setdefault(key, []).append(j)
    return sorted((i, j) for i, text in enumerate(instructions) for j in by_text.get(normalize_text(text), ()))
