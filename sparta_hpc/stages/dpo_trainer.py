"""TRL's DPOTrainer, with nothing lost to length limits without a count.

TRL 1.16's DPOTrainer tokenizes the pairs, silently drops every pair whose prompt alone reaches
`max_length` (`_prepare_dataset`, "Dropping fully truncated examples"), and lets its collator cut
the rest at `max_length` (keep_start: the end of the longer answer goes). Its logs then report the
row count it was given. It has no prompt limit of its own any more, while the SPARTA authors' DPO
cut prompts at 256 tokens (`max_prompt_length`, in the TRL they used).

`CountingDPOTrainer` does the same tokenization (TRL's own), then, before TRL's filter would:
cuts each prompt to its last `max_prompt_length` tokens (None: no cut; the end is kept because
the question sits at the end of a chat prompt, as older TRL's DPOTrainer did), drops the pairs
whose prompt still reaches `max_length` and counts the pairs that the collator will cut. The
counts (`length_counts`) go to the member's marker, its log and the report (stages/train.py).
Done here rather than upstream because TRL exposes no hook between tokenizing and filtering.
"""

from __future__ import annotations

import logging

from trl import DPOTrainer

log = logging.getLogger(__name__)


def fit_row(row: dict, max_prompt_length: int | None, max_length: int | None) -> dict:
    """One tokenized pair's lengths after the prompt cut: whether it is kept and whether it is cut."""
    prompt = row["prompt_ids"]
    if max_prompt_length is not None and len(prompt) > max_prompt_length:
        prompt = prompt[-max_prompt_length:]
    longest = len(prompt) + max(len(row["chosen_ids"]), len(row["rejected_ids"]))
    return {"prompt_ids": prompt, "prompt_cut": len(prompt) < len(row["prompt_ids"]),
            "keep": max_length is None or len(prompt) < max_length,
            "answer_cut": max_length is not None and longest > max_length}


class CountingDPOTrainer(DPOTrainer):
    """DPOTrainer + `max_prompt_length` + `length_counts` (see the module's docstring)."""

    def __init__(self, *args, max_prompt_length: int | None = None, **kwargs):
        self.max_prompt_length = max_prompt_length
        self.length_counts: dict[str, int] = {}
        super().__init__(*args, **kwargs)

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        max_length = args.max_length
        args.max_length = None  # TRL tokenizes without its filter; the filter is applied below, counted
        try:
            dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
        finally:
            args.max_length = max_length
        rows = len(dataset)
        dataset = dataset.map(fit_row, fn_kwargs={"max_prompt_length": self.max_prompt_length,
                                                  "max_length": max_length})
        counts = {"pairs_given": rows, "prompts_cut": sum(dataset["prompt_cut"]),
                  "pairs_dropped_for_length": rows - sum(dataset["keep"]),
                  "pairs_cut_at_max_length": sum(c and k for c, k in zip(dataset["answer_cut"], dataset["keep"]))}
        dataset = dataset.filter(lambda row: row["keep"]).remove_columns(["prompt_cut", "keep", "answer_cut"])
        counts["pairs_trained"] = len(dataset)
        if dataset_name == "train":
            self.length_counts = counts
        return dataset
