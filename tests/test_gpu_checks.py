"""The GPU path's up-front checks (sparta_hpc/preflight.py), each refusing before any job what would
otherwise fail, or idle GPUs, only on the cluster. (vLLM's interpreters: tests/test_config.py.)"""

import json

import pytest

from sparta_hpc.config.schema import load_config
from sparta_hpc.errors import ConfigError
from sparta_hpc.preflight import check_gpu_path

from .conftest import ROOT
from .test_config import write_config

ZERO3 = str(ROOT / "configs/deepspeed/zero3.json")


def config(tmp_path, fake_model, *overrides, heads=None):
    if heads:
        (fake_model / "config.json").write_text(json.dumps({"num_attention_heads": heads[0],
                                                            "num_key_value_heads": heads[1]}))
    return load_config(write_config(tmp_path, fake_model), list(overrides))


@pytest.mark.parametrize("overrides, message", [
    (["cluster.train.gpus_per_node=4"], "cluster.train: member 'concise''s train job asks for 4 GPUs per node but "
                                        "runs 1 process(es) per node"),
    (["tribe.members.concise.resources={nodes: 2, gpus_per_node: 8}"],
     "tribe.members.0.resources: member 'concise''s train job asks for 8 GPUs per node but runs 1 process(es)"),
    ([f"tribe.members.stepwise.deepspeed={ZERO3}", "train.precompute_ref_log_probs=true"],
     "train.precompute_ref_log_probs: member 'stepwise' trains under ZeRO-3 (tribe.members.1.deepspeed)"),
    ([f"tribe.members.plain.deepspeed={ZERO3}", "train.quantization=4bit"],
     "train.quantization: 4bit (QLoRA) does not shard under ZeRO-3 (tribe.members.3.deepspeed of member 'plain')"),
    ([f"train.deepspeed={ZERO3}", "train.quantization=4bit"], "(train.deepspeed of member 'concise')"),
])
def test_training_settings_that_would_fail_or_idle_on_the_gpus_are_refused(tmp_path, fake_model, overrides, message):
    with pytest.raises(ConfigError) as err:
        check_gpu_path(config(tmp_path, fake_model, *overrides))
    assert message in str(err.value)


def test_every_gpu_of_a_training_job_has_its_process(tmp_path, fake_model):
    check_gpu_path(config(tmp_path, fake_model, "cluster.train.gpus_per_node=4", "cluster.train.tasks_per_node=4"))
    for preset in ("paper-qwen7b.yaml", "mixed-qwen.yaml", "tribe-tulu-qwen7b.yaml"):
        cfg = load_config(ROOT / "configs" / preset)
        from sparta_hpc.preflight import check_training_ranks

        check_training_ranks(cfg)  # the presets use every GPU they ask for


@pytest.mark.parametrize("overrides, heads, ok", [
    (["vllm.tensor_parallel_size=4"], (28, 4), True),     # Qwen2.5-7B's heads
    (["vllm.tensor_parallel_size=8"], (28, 4), False),    # 28 heads do not split 8 ways
    (["vllm.tensor_parallel_size=3"], (12, 2), False),    # the key-value heads do not split 3 ways
    (["cluster.generate.gpus_per_node=8"], (28, 4), False),  # null: every GPU of the task
    (["cluster.generate.gpus_per_node=2"], (14, 2), True),
])
def test_a_tensor_parallel_size_must_split_the_attention_heads(tmp_path, fake_model, monkeypatch, overrides, heads,
                                                               ok):
    from sparta_hpc import preflight as gpu_checks

    monkeypatch.setattr(gpu_checks, "check_vllm_interpreters", lambda cfg: None)  # no vLLM here
    cfg = config(tmp_path, fake_model, "generate.backend=vllm", "judge.backend=hf", "vllm.tensor_parallel_size=null",
                 *overrides, heads=heads)
    if ok:
        check_gpu_path(cfg)
    else:
        with pytest.raises(ConfigError, match=f"does not split .*'s {heads[0]} attention heads"):
            check_gpu_path(cfg)


def test_precomputed_reference_log_probs_are_cached_where_every_rank_finds_them(tmp_path, monkeypatch):
    """TRL 1.16 caches precomputed reference log-probs next to the training dataset's files, rank 0 writes
    the cache and every rank reads it under the name `Dataset._get_cache_file_path` gives. An in-memory
    dataset's name is random, in each process's own temporary folder: rank 1 failed with FileNotFoundError
    on rank 0's file (seen on a 2-rank ZeRO-2 job). The pairs are put on disk in the member's work folder."""
    from datasets import Dataset

    from sparta_hpc.stages.train import on_disk

    rows = [{"prompt": "p", "chosen": "a", "rejected": "b"}] * 3
    names = []
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        dataset = on_disk(Dataset.from_list(rows), tmp_path / "work")
        assert dataset.to_list() == rows
        names.append(dataset._get_cache_file_path("fingerprint-every-rank-gets"))
    assert names[0] == names[1] == str(tmp_path / "work" / "cache-fingerprint-every-rank-gets.arrow")
    in_memory = [Dataset.from_list(rows)._get_cache_file_path("fingerprint-every-rank-gets") for _ in range(2)]
    assert in_memory[0] != in_memory[1]  # what TRL got before: another name on every call
