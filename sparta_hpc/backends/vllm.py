"""vLLM backend: one offline engine per base model serves every member of a group.

The engine loads the base model once; each member with an adapter is a
`LoRARequest` of its own (multi-LoRA in one batch), a member without one runs
on the bare base. Prompts go through the tokenizer's chat template exactly as
in the HF backend (same token ids, so both backends see the same inputs).

The engine is built inside the array task and is torn down by the task's
process ending: vLLM does not reliably free accelerator memory in-process.
`isolate_engine` gives every task its own ports, IPC paths and cache folders
so that several engines on one node do not collide.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from pathlib import Path

from ..rundir.files import free_port
from . import Batch, Generated, chat_prompts
from .devices import has_gpu, visible_gpus

log = logging.getLogger(__name__)

# vLLM sizes its LoRA buffers for one of these ranks
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)


def isolate_engine(cache_dir: Path, cpu_kv_cache_gb: int) -> None:
    """Per-task ports, IPC socket folder and caches (set before vllm is imported).

    Two engines on one node otherwise race for the same ports and compile
    caches. Values a user exported win (setdefault), except the IPC folder:
    it is always fresh and short (Unix socket paths are capped at 108 bytes).
    """
    env = os.environ
    env.setdefault("HF_HUB_OFFLINE", "1")
    if on_gpu():
        # vLLM's processes are forked by default, which CUDA does not survive once the parent touched it
        # (anything that asked torch.cuda): spawned ones never inherit a CUDA context. (On CPUs fork is
        # safe and starts faster.)
        env.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    env.setdefault("VLLM_NO_USAGE_STATS", "1")
    env.setdefault("VLLM_PORT", str(free_port()))
    env.setdefault("VLLM_CACHE_ROOT", str(cache_dir / "vllm"))
    env.setdefault("TORCHINDUCTOR_CACHE_DIR", str(cache_dir / "inductor"))
    env.setdefault("TRITON_CACHE_DIR", str(cache_dir / "triton"))
    env["VLLM_RPC_BASE_PATH"] = tempfile.mkdtemp(prefix="sparta-vllm-")
    if not on_gpu():
        import torch

        env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(cpu_kv_cache_gb))
        # Bind to the CPUs this task was given (Slurm's allocation, or the whole
        # machine) with the task's thread count (set_threads): vLLM's "auto"
        # keeps one core back and drops to 1 thread, half of a 2-core node.
        env.setdefault("VLLM_CPU_OMP_THREADS_BIND", ",".join(map(str, sorted(os.sched_getaffinity(0)))))
        env.setdefault("OMP_NUM_THREADS", str(torch.get_num_threads()))


def on_gpu() -> bool:
    """Whether the task has a GPU, asked without initializing CUDA (devices.py)."""
    return has_gpu()


def lora_rank(adapters: dict[str, str]) -> int:
    """The smallest rank vLLM supports that fits every adapter of the group."""
    need = max(json.loads(Path(p, "adapter_config.json").read_text())["r"] for p in adapters.values())
    for r in LORA_RANKS:
        if r >= need:
            return r
    raise ValueError(f"LoRA rank {need} is above vLLM's maximum {LORA_RANKS[-1]}")


class VLLMGroup:
    """A base model in one vLLM engine with the adapters of the members it serves."""

    def __init__(self, model_path: str, adapters: dict[str, str | None], *, dtype: str, engine, cache_dir: Path,
                 seed: int, trust_remote_code: bool = False):
        isolate_engine(cache_dir, engine.cpu_kv_cache_gb)
        from vllm import LLM
        from vllm.lora.request import LoRARequest

        start = time.time()
        self.adapters = {name: path for name, path in adapters.items() if path}
        # lora_int_id >= 1, stable within the engine; None: the bare base model
        self.requests = {name: LoRARequest(name, i + 1, path) for i, (name, path) in enumerate(self.adapters.items())}
        gpus = on_gpu()
        tp = engine.tensor_parallel_size
        if tp is None:  # every GPU the job was given
            tp = max(1, len(visible_gpus()))
        extra = {"block_size": engine.block_size} if engine.block_size else {}
        lora = {"enable_lora": True, "max_loras": len(self.adapters), "max_lora_rank": lora_rank(self.adapters),
                "max_cpu_loras": len(self.adapters)} if self.adapters else {}
        self.llm = LLM(model=model_path, dtype=dtype, tensor_parallel_size=tp, seed=seed,
                       max_model_len=engine.max_model_len, gpu_memory_utilization=engine.gpu_memory_utilization,
                       enforce_eager=engine.enforce_eager or not gpus, enable_prefix_caching=True,
                       trust_remote_code=trust_remote_code, **lora, **extra)
        # vLLM's CPU LoRA kernels index the adapter slots with a bare request's -1, so a bare
        # request batched with adapter requests is run through the last slot's adapter (vLLM 0.32.0:
        # vllm/lora/ops/torch_ops/lora_ops.py lines 31, 74, 119 vs punica_wrapper/utils.py line 101;
        # the GPU kernels skip -1: triton_ops/lora_shrink_op.py line 62). An all-bare batch skips
        # LoRA, so on CPU bare requests go to the engine in a call of their own.
        self.split_bare = bool(self.adapters) and not gpus
        self.loads = 1
        self.max_model_len = self.llm.model_config.max_model_len
        self.tokenizer = self.llm.get_tokenizer()
        self.members = list(adapters)
        log.info("vLLM engine for %s (tensor parallel %d) with %d adapter(s) for %s in %.1f s", model_path, tp,
                 len(self.adapters), ", ".join(self.members), time.time() - start)

    def close(self) -> None:
        """Stop the engine's processes now. A task never needs this (its process ends);
        a caller that lives on (a test) would otherwise stop them at interpreter exit."""
        self.llm.llm_engine.engine_core.shutdown()

    def prompt_ids(self, conversations: list[list[dict]], prefix: str) -> list[list[int]]:
        """Chat template + prefix, tokenized as the HF backend does (no extra special tokens)."""
        return [self.tokenizer.encode(t, add_special_tokens=False)
                for t in chat_prompts(self.tokenizer, conversations, prefix)]

    def _run(self, prompts: list[list[int]], params: list, members: list[str]) -> list:
        """One engine call for every member's prompts: each prompt names its member's
        adapter (or none), so vLLM batches all adapters together (on CPU, bare prompts
        in a second call: `split_bare`). The outputs are in the prompts' order."""
        from vllm.inputs import TokensPrompt

        longest = max(len(p) + s.max_tokens for p, s in zip(prompts, params))
        if self.max_model_len and longest > self.max_model_len:
            raise ValueError(f"a prompt plus its answer needs {longest} tokens, above the engine's "
                             f"max_model_len {self.max_model_len}: raise vllm.max_model_len in the config "
                             "(or lower the members' max_new_tokens)")
        calls = [range(len(prompts))]
        if self.split_bare:
            calls = [[i for i, m in enumerate(members) if (m in self.requests) == lora] for lora in (True, False)]
        outs = [None] * len(prompts)
        for call in calls:
            if not call:
                continue
            done = self.llm.generate([TokensPrompt(prompt_token_ids=prompts[i]) for i in call],
                                     [params[i] for i in call],
                                     lora_request=[self.requests.get(members[i]) for i in call], use_tqdm=False)
            for i, out in zip(call, done):
                outs[i] = out
        return outs

    def generate_all(self, batches: list[Batch], batch_size: int) -> list[list[Generated]]:
        """Every member's completions in one engine call (`batch_size` is the HF backend's:
        vLLM schedules its own batches). Each prompt has its own seed (the batch's
        seed + position), so a rerun samples the same texts."""
        from vllm import SamplingParams

        prompts, params, members = [], [], []
        for b in batches:
            prompts += self.prompt_ids(b.conversations, b.prefix)
            params += [SamplingParams(temperature=b.temperature, top_p=b.top_p if b.temperature > 0 else 1.0,
                                      max_tokens=b.max_new_tokens, seed=b.seed + i,
                                      **({"top_k": b.top_k} if b.top_k and b.temperature > 0 else {}))
                       for i in range(len(b.conversations))]
            members += [b.member] * len(b.conversations)
        outs = iter(self._run(prompts, params, members))
        result = []
        for b in batches:
            done = [next(outs).outputs[0] for _ in b.conversations]
            result.append([Generated((b.prefix + o.text).strip(), len(o.token_ids)) for o in done])
        return result

    def generate(self, member: str, conversations: list[list[dict]], *, temperature: float, top_p: float,
                 max_new_tokens: int, batch_size: int, seed: int, prefix: str = "") -> list[Generated]:
        return self.generate_all([Batch(member, conversations, temperature, top_p, max_new_tokens, seed, prefix)],
                                 batch_size)[0]

    def score_all(self, members: list[str], conversations: list[list[list[dict]]], prefix: str,
                  candidates: list[str], batch_size: int) -> list[list[dict[str, float]]]:
        """log P(candidate | chat prompt + prefix) for each candidate string, per member and conversation.

        The candidates' token sequences form a trie ("1}" and "10}" share "1");
        one 1-token request per trie node and conversation asks for the
        log-probabilities of exactly that node's children (`logprob_token_ids`).
        All requests of a conversation share its prompt, which prefix caching
        computes once: the cost is about one prompt pass plus a token per node.
        Every member's requests go to the engine in one call.
        """
        from vllm import SamplingParams

        cand_ids = [tuple(self.tokenizer.encode(c, add_special_tokens=False)) for c in candidates]
        nodes: dict[tuple[int, ...], list[int]] = {}  # trie node -> its children's tokens
        for ids in cand_ids:
            for k in range(len(ids)):
                children = nodes.setdefault(ids[:k], [])
                if ids[k] not in children:
                    children.append(ids[k])
        rows = [(m, c, member, base) for m, (member, convs) in enumerate(zip(members, conversations))
                for c, base in enumerate(self.prompt_ids(convs, prefix))]
        step = {}
        # Two calls: the prompts alone first, so that the deeper nodes' requests
        # find them in the prefix cache (requests of one batch cannot share it).
        for level in ([()], [node for node in nodes if node]):
            requests = [(m, c, node, member, base + list(node)) for m, c, member, base in rows for node in level]
            if not requests:
                continue
            outs = self._run([r[4] for r in requests],
                             [SamplingParams(temperature=0.0, max_tokens=1, logprob_token_ids=nodes[r[2]])
                              for r in requests], [r[3] for r in requests])
            for (m, c, node, _, _), out in zip(requests, outs):
                step[(m, c, node)] = {tok: lp.logprob for tok, lp in out.outputs[0].logprobs[0].items()}
        return [[{cand: sum(step[(m, c, ids[:k])][ids[k]] for k in range(len(ids)))
                  for cand, ids in zip(candidates, cand_ids)} for c in range(len(convs))]
                for m, convs in enumerate(conversations)]

    def score_logprobs(self, member: str, conversations: list[list[dict]], prefix: str,
                       candidates: list[str], batch_size: int) -> list[dict[str, float]]:
        return self.score_all([member], [conversations], prefix, candidates, batch_size)[0]
