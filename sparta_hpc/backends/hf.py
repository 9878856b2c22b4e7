"""Hugging Face transformers backend: one base model load serves every member of a group.

Members that share a base model differ by LoRA adapter (or none); the base is
loaded once, each adapter is attached under the member's name and switched
with `set_adapter`, a member without an adapter runs with adapters disabled.
Generation is batched with left padding and each prompt goes through the
tokenizer's own chat template.
"""

from __future__ import annotations

import contextlib
import logging
import time

import torch

from . import Batch, Generated, chat_prompts

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


# Sampling is exactly the member's (temperature, top_p, max_new_tokens). transformers fills every setting
# a call leaves unset from the model's generation_config.json (Qwen2.5's: top_k 20, repetition_penalty
# 1.05, which also change greedy answers), while vLLM never applies it to explicit SamplingParams: without
# these the two backends would answer differently. Keyword arguments are applied last, so these win.
NEUTRAL = dict(top_k=None, repetition_penalty=None, min_p=None, typical_p=None, epsilon_cutoff=None,
               eta_cutoff=None, no_repeat_ngram_size=None, encoder_repetition_penalty=None)


class HFGroup:
    """A base model with the adapters of the members it serves."""

    def __init__(self, model_path: str, adapters: dict[str, str | None], dtype: str = "float32",
                 device: str | None = None, trust_remote_code: bool = False):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        start = time.time()
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left",
                                                       trust_remote_code=trust_remote_code)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(model_path, dtype=DTYPES[dtype],
                                                     trust_remote_code=trust_remote_code).to(self.device)
        self.loads = 1
        self.adapters = {name: path for name, path in adapters.items() if path}
        if self.adapters:
            from peft import PeftModel

            first, *rest = self.adapters.items()
            model = PeftModel.from_pretrained(model, first[1], adapter_name=first[0])
            for name, path in rest:
                model.load_adapter(path, adapter_name=name)
        self.model = model.eval()
        self.members = list(adapters)
        log.info("loaded %s with %d adapter(s) for %s in %.1f s", model_path, len(self.adapters),
                 ", ".join(self.members), time.time() - start)

    @contextlib.contextmanager
    def member(self, name: str):
        """Run the model as member `name`: its adapter, or the bare base model."""
        if name in self.adapters:
            self.model.set_adapter(name)
            yield
        elif self.adapters:
            with self.model.disable_adapter():
                yield
        else:
            yield

    def generate_all(self, batches: list[Batch], batch_size: int) -> list[list[Generated]]:
        """Each member's prompts in turn (one adapter is active at a time)."""
        return [self.generate(b.member, b.conversations, temperature=b.temperature, top_p=b.top_p,
                              max_new_tokens=b.max_new_tokens, batch_size=batch_size, seed=b.seed, prefix=b.prefix,
                              top_k=b.top_k)
                for b in batches]

    def score_all(self, members: list[str], conversations: list[list[list[dict]]], prefix: str,
                  candidates: list[str], batch_size: int) -> list[list[dict[str, float]]]:
        return [self.score_logprobs(m, c, prefix, candidates, batch_size) for m, c in zip(members, conversations)]

    @torch.inference_mode()
    def generate(self, member: str, conversations: list[list[dict]], *, temperature: float, top_p: float,
                 max_new_tokens: int, batch_size: int, seed: int, prefix: str = "",
                 top_k: int | None = None) -> list[Generated]:
        """One completion per conversation, batched; sampling is seeded per batch.

        `prefix` starts the assistant's answer (prefilled, not generated); the
        returned text is the prefix followed by what the model wrote.
        """
        out: list[Generated] = []
        texts = chat_prompts(self.tokenizer, conversations, prefix)
        with self.member(member):
            for start in range(0, len(texts), batch_size):
                batch = self.tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                                       add_special_tokens=False).to(self.device)
                torch.manual_seed(seed + start)
                sampling = dict(do_sample=True, temperature=temperature, top_p=top_p, top_k=top_k) \
                    if temperature > 0 else dict(do_sample=False, temperature=None, top_p=None)
                tokens = self.model.generate(**batch, max_new_tokens=max_new_tokens,
                                             pad_token_id=self.tokenizer.pad_token_id, **{**NEUTRAL, **sampling})
                new = tokens[:, batch["input_ids"].shape[1]:]
                for row in new:
                    n = int((row != self.tokenizer.pad_token_id).sum())
                    text = self.tokenizer.decode(row, skip_special_tokens=True)
                    out.append(Generated((prefix + text).strip(), n))
        return out

    @torch.inference_mode()
    def score_logprobs(self, member: str, conversations: list[list[dict]], prefix: str,
                       candidates: list[str], batch_size: int) -> list[dict[str, float]]:
        """log P(candidate | chat prompt + prefix) for each candidate string, per conversation.

        The prompt is run once; its KV cache is then repeated once per candidate
        and all candidates' tokens (e.g. "10}" as "1", "0", "}") are scored in a
        second, short forward pass. Scoring each candidate as a full sequence
        would cost one prompt pass per candidate (10x for scores 1..10).
        """
        cand_ids = [self.tokenizer.encode(c, add_special_tokens=False) for c in candidates]
        n_cand, width = len(cand_ids), max(len(ids) for ids in cand_ids)
        pad = self.tokenizer.pad_token_id
        cont = torch.tensor([ids + [pad] * (width - len(ids)) for ids in cand_ids], device=self.device)
        texts = chat_prompts(self.tokenizer, conversations, prefix)
        results: list[dict[str, float]] = []
        with self.member(member):
            for start in range(0, len(texts), batch_size):
                enc = self.tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                                     add_special_tokens=False).to(self.device)
                mask = enc["attention_mask"]
                positions = (mask.cumsum(-1) - 1).clamp(min=0)
                out = self.model(input_ids=enc["input_ids"], attention_mask=mask, position_ids=positions,
                                 use_cache=True, logits_to_keep=1)
                first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (B, vocab)
                # transformers >= 5.2x calls it `cache`, older releases `past_key_values`
                cache_arg = "cache" if hasattr(out, "cache") else "past_key_values"
                cache = getattr(out, cache_arg)
                cache.batch_repeat_interleave(n_cand)
                rows = len(mask)
                ext_mask = torch.cat([mask.repeat_interleave(n_cand, 0),
                                      torch.ones(rows * n_cand, width, dtype=mask.dtype, device=self.device)], 1)
                ext_pos = positions[:, -1:].repeat_interleave(n_cand, 0) + 1 + torch.arange(width, device=self.device)
                later = self.model(input_ids=cont.repeat(rows, 1), attention_mask=ext_mask, position_ids=ext_pos,
                                   **{cache_arg: cache}).logits.float()
                later = torch.log_softmax(later, dim=-1).view(rows, n_cand, width, -1)
                for r in range(rows):
                    scores = {}
                    for c, ids in enumerate(cand_ids):
                        total = float(first[r, ids[0]])
                        total += sum(float(later[r, c, k - 1, tok]) for k, tok in enumerate(ids) if k > 0)
                        scores[candidates[c]] = total
                    results.append(scores)
        return results
