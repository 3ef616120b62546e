"""The ``vllm`` backend: vLLM in process, for GPU machines (``pip install "ragguard[vllm]"``).

Every answer is its own vLLM request: the greedy one with ``temperature=0``, each sample with
``SamplingParams(n=1, seed=<its derived seed>)``, so a sample depends on its seed alone, as with
the transformers backend. Prefix caching is on, so the rows of one question compute their shared
prompt once, and vLLM's continuous batching runs all rows of all questions of a call together.
A LoRA adapter (``generator.adapter``, a local PEFT folder) is applied per request through
``LoRARequest`` and stays separate from the base weights.

Each request asks for ``SamplingParams.logprobs`` so every completion carries its tokens'
log-probabilities (``Completion.token_logprobs``): one per generated token id, the end-of-sequence
token included when the answer stopped on it, as with the transformers backend. vLLM's V1 engine
computes them from the raw logits (before temperature, penalties, top-k and top-p) unless
``logprobs_mode`` says otherwise.

vLLM is imported when the model loads, never at ``import ragguard``.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragguard.config import GeneratorConfig, SamplingConfig
from ragguard.core.protocols import BatchGenerator, Completion
from ragguard.errors import ModelLoadError

__all__ = ["VLLMGenerator", "lora_rank"]

_LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts


def lora_rank(adapter: str) -> int:
    """The smallest ``max_lora_rank`` vLLM accepts that fits the adapter's rank ``r``."""
    path = Path(adapter) / "adapter_config.json"
    try:
        r = int(json.loads(path.read_text(encoding="utf-8")).get("r", 16))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot read {str(path)!r} ({exc}): generator.adapter must be a PEFT adapter folder") from None
    for rank in _LORA_RANKS:
        if r <= rank:
            return rank
    raise ModelLoadError(f"adapter {adapter!r} has rank {r}, above vLLM's largest max_lora_rank {_LORA_RANKS[-1]}")


class VLLMGenerator(BatchGenerator):
    """A :class:`~ragguard.core.protocols.Generator` over ``vllm.LLM`` (loaded on first use).

    Args:
        gen_config: ``model`` (a local folder or hub id), ``dtype``, ``adapter``,
            ``gpu_memory_utilization``, ``max_model_len``, ``trust_remote_code``.
        sampling: temperature, top_p, top_k, repetition_penalty, max_new_tokens.
    """

    def __init__(self, gen_config: GeneratorConfig, sampling: SamplingConfig) -> None:
        if gen_config.model == "embedded" or gen_config.gguf_file:
            raise ModelLoadError(
                "the vllm backend loads safetensors checkpoints: set generator.model to a folder or hub id "
                "(the embedded GGUF model runs with backend: transformers)"
            )
        self.gen_config = gen_config
        self.sampling = sampling
        self.name = gen_config.model
        self.adapter = gen_config.adapter
        self.model_sha256: str | None = None
        self.adapter_sha256: str | None = None
        self.device = "unloaded"
        self._llm: Any = None
        self._lora: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        """Start the vLLM engine now (otherwise done on first generate)."""
        with self._lock:
            if self._llm is not None:
                return
            try:
                from vllm import LLM
                from vllm.lora.request import LoRARequest
            except ImportError:
                raise ModelLoadError(
                    'the vllm backend needs vLLM on a Linux machine with a CUDA GPU: run `pip install "ragguard[vllm]"`'
                    ", or use generator.backend: transformers"
                ) from None
            cfg = self.gen_config
            kwargs: dict[str, Any] = {
                "model": cfg.model,
                "dtype": cfg.dtype,
                "enable_prefix_caching": True,
                "gpu_memory_utilization": cfg.gpu_memory_utilization,
                "trust_remote_code": cfg.trust_remote_code,
                "seed": 0,
            }
            if cfg.max_model_len is not None:
                kwargs["max_model_len"] = cfg.max_model_len
            if cfg.adapter:
                if not Path(cfg.adapter).is_dir():
                    raise ModelLoadError(f"adapter folder {cfg.adapter!r} does not exist: check generator.adapter")
                kwargs.update(enable_lora=True, max_loras=1, max_lora_rank=lora_rank(cfg.adapter))
                from ragguard.generation.sources import adapter_weights_sha256

                self.adapter_sha256 = adapter_weights_sha256(Path(cfg.adapter))
            local = Path(cfg.model).expanduser()
            if local.is_dir():
                weights = sorted(local.glob("*.safetensors"))
                if weights:
                    from ragguard.generation.models import file_sha256

                    self.model_sha256 = file_sha256(weights[0])
            try:
                llm = LLM(**kwargs)
            except Exception as exc:
                raise ModelLoadError(
                    f"vLLM cannot load {cfg.model!r} ({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
                    "): check generator.model, gpu_memory_utilization and max_model_len"
                ) from None
            self._lora = LoRARequest(Path(cfg.adapter).name, 1, str(cfg.adapter)) if cfg.adapter else None
            self._llm = llm
            try:
                import torch

                self.device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "vllm"
            except ImportError:  # pragma: no cover - vLLM depends on torch
                self.device = "vllm"

    def _params(self, seed: int | None) -> Any:
        from vllm import SamplingParams

        s = self.sampling
        # logprobs=1: the chosen token's log-probability (and the best alternative's, which is not kept);
        # some vLLM versions treat 0 as "none".
        if seed is None:  # greedy
            return SamplingParams(n=1, temperature=0.0, max_tokens=s.max_new_tokens,
                                  repetition_penalty=s.repetition_penalty, logprobs=1)
        return SamplingParams(
            n=1, seed=seed, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k if s.top_k > 0 else -1,
            repetition_penalty=s.repetition_penalty, max_tokens=s.max_new_tokens, logprobs=1,
        )

    def generate_batch(
        self, conversations: Sequence[Sequence[dict[str, str]]], seeds: Sequence[Sequence[int | None]]
    ) -> list[list[Completion]]:
        """All rows of all prompts in one ``LLM.generate`` call (one request per row)."""
        if len(conversations) != len(seeds):
            raise ValueError("one list of seeds per conversation is required")
        self.load()
        tokenizer = self._llm.get_tokenizer()
        prompts: list[str] = []
        params: list[Any] = []
        for messages, row_seeds in zip(conversations, seeds, strict=True):
            text = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
            for seed in row_seeds:
                prompts.append(text)
                params.append(self._params(seed))
        if not prompts:
            return [[] for _ in conversations]
        outputs = self._llm.generate(prompts, params, use_tqdm=False, lora_request=self._lora)
        completions = iter(outputs)
        result: list[list[Completion]] = []
        for row_seeds in seeds:
            row = []
            for seed in row_seeds:
                out = next(completions).outputs[0]
                row.append(Completion(text=out.text.strip(), seed=seed, token_logprobs=_output_logprobs(out)))
            result.append(row)
        return result


def _output_logprobs(output: Any) -> tuple[float, ...] | None:
    """The log-probability of each token of a vLLM ``CompletionOutput``, or None when it has none.

    ``output.logprobs`` holds one ``{token_id: Logprob}`` per generated token; the chosen
    token's entry is the one of ``output.token_ids`` at that position.
    """
    steps, ids = getattr(output, "logprobs", None), getattr(output, "token_ids", None)
    if steps is None or ids is None or len(steps) != len(ids):
        return None
    values = []
    for token_id, step in zip(ids, steps, strict=True):
        entry = step.get(token_id) if isinstance(step, dict) else None
        value = getattr(entry, "logprob", None)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        values.append(float(value))
    return tuple(values)
