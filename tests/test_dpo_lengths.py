"""Pairs lost or cut to the length limits are counted (slow tier: TRL's DPOTrainer on the tiny model).

Three pairs: one whose prompt alone is longer than train.max_length (TRL drops such a pair without
a word), one whose answer runs past it (TRL's collator cuts it), one that fits. Without a prompt
limit the first is dropped and counted; with train.max_prompt_length its prompt keeps its last
tokens and the pair trains. Then one real DPO step runs on what is left.
"""

import pytest
import torch

from sparta_hpc.stages.dpo_trainer import CountingDPOTrainer, fit_row

pytestmark = pytest.mark.slow


def test_fit_row_cuts_the_prompt_from_the_start_and_flags_what_the_collator_cuts():
    row = {"prompt_ids": list(range(10)), "chosen_ids": [1, 2, 3], "rejected_ids": [1]}
    assert fit_row(row, None, 20) == {"prompt_ids": list(range(10)), "prompt_cut": False, "keep": True,
                                      "answer_cut": False}
    assert fit_row(row, None, 10) == {"prompt_ids": list(range(10)), "prompt_cut": False, "keep": False,
                                      "answer_cut": True}
    assert fit_row(row, 4, 6) == {"prompt_ids": [6, 7, 8, 9], "prompt_cut": True, "keep": True, "answer_cut": True}


def pairs() -> list[dict]:
    def turn(role, text):
        return [{"role": role, "content": text}]
    long_prompt = "Please read this carefully. " * 40 + "What is 2 + 2?"
    return [{"prompt": turn("user", long_prompt), "chosen": turn("assistant", "4"), "rejected": turn("assistant", "5")},
            {"prompt": turn("user", "Name a colour."), "chosen": turn("assistant", "Blue " * 80),
             "rejected": turn("assistant", "Car")},
            {"prompt": turn("user", "What is 3 + 3?"), "chosen": turn("assistant", "6"),
             "rejected": turn("assistant", "7")}]


def test_dropped_and_cut_pairs_are_counted_and_a_prompt_limit_keeps_the_long_prompt(tiny_model, tmp_path):
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)

    def trainer(max_prompt_length):
        args = DPOConfig(output_dir=str(tmp_path / str(max_prompt_length)), max_length=96, max_steps=1,
                         per_device_train_batch_size=3, report_to=[], use_cpu=True, save_strategy="no",
                         logging_steps=1, disable_tqdm=True, bf16=False, gradient_checkpointing=False)  # TRL: True
        return CountingDPOTrainer(model=model, args=args, processing_class=tokenizer,
                                  train_dataset=Dataset.from_list(pairs()), max_prompt_length=max_prompt_length)

    plain = trainer(None)
    assert plain.length_counts == {"pairs_given": 3, "prompts_cut": 0, "pairs_dropped_for_length": 1,
                                   "pairs_cut_at_max_length": 1, "pairs_trained": 2}
    assert len(plain.train_dataset) == 2
    model.delete_adapter("ref")  # TRL's frozen copy of the adapter, made again by the next trainer
    limited = trainer(48)
    assert limited.length_counts == {"pairs_given": 3, "prompts_cut": 1, "pairs_dropped_for_length": 0,
                                     "pairs_cut_at_max_length": 1, "pairs_trained": 3}
    assert max(len(p) for p in limited.train_dataset["prompt_ids"]) == 48
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    limited.train()  # the kept pairs train: a real step moves the adapter
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if n in before)
