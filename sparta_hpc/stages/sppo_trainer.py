"""SPPO's own loss (Wu et al. 2024, arXiv 2405.00675) on TRL's DPOTrainer.

Why a subclass: TRL 1.16 ships only `sppo_hard` (the winner's win rate set to 1, the loser's to 0),
and its `_compute_loss` is one method with no per-loss hook. SPPO's loss needs each answer's
estimated win rate P̂ against the policy, per pair, which TRL never sees. Its code
(uclaml/SPPO @5e61c4e, sppo/trainer.py:859-860 and 876-879):

    logits_w = policy_chosen_logps - reference_chosen_logps
    logits_l = policy_rejected_logps - reference_rejected_logps
    loss_w = (logits_w - (1 / self.beta)*(chosen_probs_win - 0.5)) ** 2
    loss_l = (logits_l - (1 / self.beta)*(chosen_probs_lose - 0.5)) ** 2
    losses = (loss_w + loss_l)/2

then `losses.mean()` over the batch; η = 1/β, with β = 0.001 in its scripts (η = 1000).

How it rides on TRL, without copying TRL's method:
- the pairs carry `chosen_win` / `rejected_win` columns; they are signature columns (kept by the
  Trainer) and `WinRateCollator` adds them to TRL's batch as float tensors;
- `_compute_loss` takes them out of the batch, gets the reference log-probs from TRL's own one-batch
  pass (`compute_ref_log_probs`, the one behind precompute_ref_log_probs) unless they are already
  precomputed, puts them in the batch and lets TRL's `_compute_loss` run as if precomputed: its policy
  forward, its metrics (rewards/*, logps/*, entropy ...). The policy output is recorded on the way
  (`_FirstOutput`), the log-ratios are formed as TRL forms them, and SPPO's loss replaces the value of
  TRL's (its `sppo_hard`, which is computed and dropped). One policy and one reference forward per
  step, as in TRL.
"""

from __future__ import annotations

import torch

from .dpo_trainer import CountingDPOTrainer

WIN_COLUMNS = ("chosen_win", "rejected_win")


def sppo_loss(chosen_logratios, rejected_logratios, chosen_win, rejected_win, eta: float):
    """SPPO's loss, mean over pairs of ((a - η(P̂_w - ½))² + (b - η(P̂_l - ½))²) / 2, a and b the
    chosen and rejected answers' log π/π_ref (sppo/trainer.py:876-879 of uclaml/SPPO). In float32:
    the targets reach ±η/2 = ±500, where bfloat16's steps are 2 to 4."""
    a, b = chosen_logratios.float(), rejected_logratios.float()
    w, l = chosen_win.to(a), rejected_win.to(a)
    return (((a - eta * (w - 0.5)) ** 2 + (b - eta * (l - 0.5)) ** 2) / 2).mean()


class WinRateCollator:
    """TRL's preference collator, plus the pairs' win rates as float tensors (TRL's drops extra keys)."""

    def __init__(self, collator):
        self.collator = collator

    def __call__(self, examples: list[dict]) -> dict:
        batch = self.collator(examples)
        for key in WIN_COLUMNS:
            batch[key] = torch.tensor([float(e[key]) for e in examples], dtype=torch.float32)
        return batch


class _FirstOutput:
    """The model TRL's `_compute_loss` calls for the policy forward, with that call's output kept."""

    def __init__(self, model):
        self.model, self.output = model, None

    def __call__(self, *args, **kwargs):
        out = self.model(*args, **kwargs)
        if self.output is None:
            self.output = out
        return out


class SPPOTrainer(CountingDPOTrainer):
    """CountingDPOTrainer with SPPO's soft loss (see the module's docstring); `eta` is SPPO's η."""

    def __init__(self, *args, eta: float, **kwargs):
        self.eta = eta
        super().__init__(*args, **kwargs)
        a = self.args
        if a.ld_alpha is not None or a.use_weighting or a.f_divergence_type != "reverse_kl":
            raise ValueError("SPPOTrainer: SPPO's loss takes the plain summed log-ratios; ld_alpha, use_weighting "
                             "and f_divergence_type other than reverse_kl are not supported")
        self.data_collator = WinRateCollator(self.data_collator)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        self._signature_columns = list(self._signature_columns) + [c for c in WIN_COLUMNS
                                                                   if c not in self._signature_columns]

    def compute_ref_log_probs(self, model, inputs):
        return super().compute_ref_log_probs(model, {k: v for k, v in inputs.items() if k not in WIN_COLUMNS})

    def _compute_loss(self, model, inputs, return_outputs):
        inputs = dict(inputs)
        chosen_win, rejected_win = (inputs.pop(k) for k in WIN_COLUMNS)
        if not self.precompute_ref_logps:  # TRL's own reference pass, then TRL reads it as precomputed
            ref = self.ref_model if self.ref_model is not None else self.model
            inputs["ref_chosen_logps"], inputs["ref_rejected_logps"] = self.compute_ref_log_probs(ref, inputs)
        policy = _FirstOutput(model)
        precompute, self.precompute_ref_logps = self.precompute_ref_logps, True
        try:
            result = super()._compute_loss(policy, inputs, return_outputs)
        finally:
            self.precompute_ref_logps = precompute
        # the log-ratios as TRL forms them (its _compute_loss, ld_alpha None)
        seq_len = inputs["completion_mask"].size(1) - 1
        chosen_logps, rejected_logps = policy.output.log_probs[:, -seq_len:].sum(dim=1).chunk(2, dim=0)
        loss = sppo_loss(chosen_logps - inputs["ref_chosen_logps"], rejected_logps - inputs["ref_rejected_logps"],
                         chosen_win, rejected_win, self.eta)
        return (loss, result[1]) if return_outputs else loss
