"""SPPO as its paper: its own squared loss on the answers' win rates (stages/sppo_trainer.py), a real
training step with it on the tiny model (slow), and the refusal of the evaluator as preference model."""

import pytest
import torch
import yaml

from sparta_hpc.config.schema import load_config
from sparta_hpc.errors import ConfigError
from sparta_hpc.methods import check_method
from sparta_hpc.stages.sppo_trainer import sppo_loss


def test_the_soft_loss_is_sppo_s_squared_loss_halved_and_averaged_over_pairs():
    # pair 1: a=0.3, b=-0.2, P_w=0.8, P_l=0.3, eta=2: targets 2(0.8-0.5)=0.6 and 2(0.3-0.5)=-0.4,
    #   ((0.3-0.6)^2 + (-0.2+0.4)^2) / 2 = (0.09 + 0.04) / 2 = 0.065
    # pair 2: a=-0.1, b=0.5, P_w=0.6, P_l=0.5: targets 0.2 and 0,
    #   ((-0.1-0.2)^2 + (0.5-0)^2) / 2 = (0.09 + 0.25) / 2 = 0.17
    # mean over the pairs: (0.065 + 0.17) / 2 = 0.1175
    a, b = torch.tensor([0.3, -0.1]), torch.tensor([-0.2, 0.5])
    assert sppo_loss(a, b, torch.tensor([0.8, 0.6]), torch.tensor([0.3, 0.5]), eta=2.0).item() == pytest.approx(0.1175)
    # one pair alone: 0.065
    assert sppo_loss(a[:1], b[:1], torch.tensor([0.8]), torch.tensor([0.3]), eta=2.0).item() == pytest.approx(0.065)


def test_at_win_rates_1_and_0_with_eta_1_over_beta_it_is_half_of_trls_sppo_hard():
    beta = 0.1
    a, b = torch.tensor([0.3, -0.1]), torch.tensor([-0.2, 0.5])
    # TRL 1.16's sppo_hard (trl/trainer/dpo_trainer.py, _compute_loss): no division by 2
    hard = ((a - 0.5 / beta) ** 2 + (b + 0.5 / beta) ** 2).mean()
    # by hand, pair 1: (0.3-5)^2 + (-0.2+5)^2 = 22.09 + 23.04 = 45.13; pair 2: (-5.1)^2 + (5.5)^2 = 26.01 + 30.25
    #   = 56.26; TRL's mean 50.695; SPPO's, halved: 25.3475
    assert hard.item() == pytest.approx(50.695)
    soft = sppo_loss(a, b, torch.ones(2), torch.zeros(2), eta=1 / beta)
    assert soft.item() == pytest.approx(25.3475) and soft.item() == pytest.approx(hard.item() / 2)


def pairs_with_win_rates() -> list[dict]:
    def turn(role, text):
        return [{"role": role, "content": text}]
    return [{"prompt": turn("user", "What is 2 + 2?"), "chosen": turn("assistant", "4"),
             "rejected": turn("assistant", "5"), "chosen_win": 0.75, "rejected_win": 0.25},
            {"prompt": turn("user", "Name a colour."), "chosen": turn("assistant", "Blue."),
             "rejected": turn("assistant", "A car."), "chosen_win": 1.0, "rejected_win": 0.0},
            {"prompt": turn("user", "What is 3 + 3?"), "chosen": turn("assistant", "6"),
             "rejected": turn("assistant", "It is 7."), "chosen_win": 0.6, "rejected_win": 0.5}]


@pytest.mark.slow
@pytest.mark.parametrize("precompute", [False, True])
def test_one_real_step_logs_the_hand_computed_loss_and_moves_the_adapter(tiny_model, tmp_path, precompute):
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig

    from sparta_hpc.stages.sppo_trainer import SPPOTrainer

    torch.manual_seed(0)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    args = DPOConfig(output_dir=str(tmp_path), max_length=64, max_steps=1, per_device_train_batch_size=3,
                     report_to=[], use_cpu=True, save_strategy="no", logging_steps=1, disable_tqdm=True,
                     loss_type="sppo_hard", beta=0.1, precompute_ref_log_probs=precompute, bf16=False,
                     gradient_checkpointing=False)  # TRL defaults to both: bf16 is ~15x slower on CPU
    dataset = Dataset.from_list(pairs_with_win_rates())
    if precompute:  # TRL caches the reference log-probs next to the dataset's files
        dataset = dataset.map(lambda row: row, cache_file_name=str(tmp_path / "pairs.arrow"))
    trainer = SPPOTrainer(model=model, args=args, processing_class=tokenizer, train_dataset=dataset, eta=4.0)
    if precompute:  # the win rates survive TRL's reference pass
        assert {"chosen_win", "rejected_win", "ref_chosen_logps"} <= set(trainer.train_dataset.column_names)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    trainer.train()
    step1 = trainer.state.log_history[0]
    # A fresh LoRA (B = 0): at step 0 the policy is the reference, both log-ratios are 0 (TRL's
    # rewards/* = beta * log-ratio), and each pair's loss is ((eta(P_w - 1/2))^2 + (eta(P_l - 1/2))^2) / 2
    # with eta = 4: (1^2 + 1^2)/2 = 1, (2^2 + 2^2)/2 = 4, (0.4^2 + 0^2)/2 = 0.08; mean 5.08 / 3
    assert step1["rewards/chosen"] == pytest.approx(0, abs=1e-6)
    assert step1["rewards/rejected"] == pytest.approx(0, abs=1e-6)
    assert step1["loss"] == pytest.approx(5.08 / 3, abs=1e-4)  # the Trainer logs 4 decimals
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters() if n in before)


def sppo_config(tmp_path, **baseline):
    for name in ("policy", "big"):
        (tmp_path / name).mkdir(exist_ok=True)
        (tmp_path / name / "config.json").write_text("{}")
    config = tmp_path / "sppo.yaml"
    config.write_text(yaml.safe_dump({
        "method": "sppo", "run": {"dir": str(tmp_path / "run")},
        "tribe": {"members": [{"name": "a", "model": str(tmp_path / "policy")}]},
        "baseline": {"member": "a", **baseline}, "eval": {"evaluator": {"model": str(tmp_path / "big")}}}))
    return load_config(config)


def test_the_evaluator_as_sppo_preference_model_is_refused_unless_asked_for(tmp_path):
    # the same folder, written another way, is the same model
    with pytest.raises(ConfigError, match="baseline.judge_model.*eval.evaluator.model.*optimise the metric"):
        check_method(sppo_config(tmp_path, judge_model=str(tmp_path / "policy" / ".." / "big")), None)
    check_method(sppo_config(tmp_path, judge_model=str(tmp_path / "big"), judge_is_evaluator=True), None)
    check_method(sppo_config(tmp_path, judge_model=str(tmp_path / "policy")), None)  # another model: fine
    check_method(sppo_config(tmp_path), None)  # the aligned model itself: fine
    # the evaluator's base model with an adapter of SPPO's own is another model
    (tmp_path / "lora").mkdir()
    (tmp_path / "lora" / "adapter_config.json").write_text("{}")
    check_method(sppo_config(tmp_path, judge_model=str(tmp_path / "big"), judge_adapter=str(tmp_path / "lora")), None)


def test_soft_sppo_reports_its_loss_type_and_hard_keeps_trls(tmp_path):
    assert sppo_config(tmp_path).loss_type == "sppo"
    assert sppo_config(tmp_path, sppo_loss="hard").loss_type == "sppo_hard"
    assert sppo_config(tmp_path).baseline.sppo_eta == 1000.0
    from sparta_hpc.config.ranges import check_ranges

    with pytest.raises(ConfigError, match="sppo_eta"):
        check_ranges(sppo_config(tmp_path, sppo_eta=0))
