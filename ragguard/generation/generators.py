"""Generation with transformers: one batched pass, one greedy row, seeded rows.

The prompt is encoded once (one prefill), its key/value cache is repeated
for every requested answer, and each row then decodes on its own:

* a row with seed ``None`` takes the arg-max token (greedy);
* a row with an int seed samples from its own ``torch.Generator`` seeded
  with that int, so a sample depends only on its seed, never on how many
  other rows share the batch or in which order.

Finished rows leave the batch, so a short answer stops costing compute.
What keeps a step with many rows cheap (a key/value cache with room for the
tokens to come, one copy of each prompt's keys and values shared by its rows,
and a CPU path for linear layers with few rows) lives in
:mod:`ragguard.generation.decoding`. Inference always runs in eval mode under
``torch.inference_mode``.

Every row also records the log-probability of each token it emits under the
model's raw distribution: ``log_softmax`` of the logits the step already
computed, before the repetition penalty, temperature, top-k and top-p (so a
sampled answer is scored the way a teacher-forced pass over it would score
it). The stop token that ends a row is scored too (the model chose to stop),
a row cut at ``max_new_tokens`` has none. This needs no extra forward pass:
one log-sum-exp over the vocabulary per step (``bench/ask_overhead.py
--logprobs-only`` measures it).

Where the weights come from is :mod:`ragguard.generation.sources`, their
quantization :mod:`ragguard.generation.quantization`, and how messages become
prompt tokens :mod:`ragguard.generation.chat`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ragguard.config import GeneratorConfig, SamplingConfig
from ragguard.core.protocols import BatchGenerator, Completion
from ragguard.errors import GenerationError, ModelLoadError
from ragguard.generation import decoding, hardware
from ragguard.generation.chat import chat_prompt_ids
from ragguard.generation.models import EMBEDDED_GENERATOR, quiet_transformers
from ragguard.generation.quantization import bnb_4bit_config, quantization_summary
from ragguard.generation.sources import (
    adapter_weights_sha256,
    hub_weights_sha256,
    load_remedy,
    refuse_pickled_weights,
    resolve_device,
    resolve_dtype,
    resolve_model_source,
)

__all__ = ["TransformersGenerator"]

logger = logging.getLogger("ragguard")


class TransformersGenerator(BatchGenerator):
    """A :class:`~ragguard.core.protocols.Generator` over a transformers causal LM.

    Build it with :meth:`from_config` (loads weights lazily on first use) or
    :meth:`from_model` (wraps objects you already have, as tests do).
    """

    def __init__(self, gen_config: GeneratorConfig, sampling: SamplingConfig) -> None:
        self.gen_config = gen_config
        self.sampling = sampling
        self.name = EMBEDDED_GENERATOR if gen_config.model == "embedded" else gen_config.model
        self.adapter = gen_config.adapter
        self.model_sha256: str | None = None
        self.adapter_sha256: str | None = None  # its weights' hash: a retrained adapter at the same path differs
        self.quantization: dict[str, Any] | None = None
        self.adapter_problems: list[str] = []
        self.device = "unloaded"
        self.dtype: str | None = None  # of the loaded weights, and the CPU's capability (fingerprinted: tokens differ)
        self.cpu: str | None = None
        self._model: Any = None
        self._tokenizer: Any = None
        # Decode into preallocated key/value buffers, with one copy of each prompt's keys and
        # values shared by its rows where the model allows (see ragguard.generation.decoding). False
        # restores transformers' concatenating cache and its attention, respectively
        # (bench/consistency_cost.py compares them).
        self.preallocate_cache = True
        self.share_prefix = True
        # Record each token's raw log-probability into Completion.token_logprobs (off: None).
        self.record_logprobs = True

    @classmethod
    def from_config(cls, gen_config: GeneratorConfig, sampling: SamplingConfig) -> TransformersGenerator:
        return cls(gen_config, sampling)

    @classmethod
    def from_model(cls, model: Any, tokenizer: Any, sampling: SamplingConfig, name: str = "custom") -> TransformersGenerator:
        """Wrap an already loaded model and tokenizer."""
        gen = cls(GeneratorConfig(model=name), sampling)
        gen.name = name
        gen._model = model.eval()
        gen._tokenizer = tokenizer
        gen.device = str(next(model.parameters()).device)
        gen.dtype, gen.cpu = hardware.model_dtype(model), hardware.cpu_capability() if gen.device == "cpu" else None
        return gen

    # ----------------------------------------------------------------- loading
    @property
    def loaded(self) -> bool:
        """Whether :meth:`load` has run (the pipeline times loading as its own stage)."""
        return self._model is not None

    def load(self) -> None:
        """Load tokenizer and weights now (otherwise done on first generate)."""
        if self._model is not None:
            return
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError:
            raise ModelLoadError("transformers and torch are required: run `pip install torch transformers`") from None
        quiet_transformers()
        cfg = self.gen_config
        device = resolve_device(cfg.device)
        dtype = resolve_dtype(cfg.dtype, device, cfg.adapter)
        kwargs: dict[str, Any] = {"dtype": dtype, "attn_implementation": cfg.attn_implementation}
        source: Any = cfg.model
        try:
            source, self.model_sha256 = resolve_model_source(cfg.model, cfg.gguf_file)
            if cfg.load_in_4bit:
                kwargs["quantization_config"] = bnb_4bit_config(
                    cfg.bnb_4bit_quant_type, cfg.bnb_4bit_use_double_quant, cfg.bnb_4bit_compute_dtype
                )
                kwargs["device_map"] = {"": device}
            refuse_pickled_weights(source)
            tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=cfg.trust_remote_code)
            model = AutoModelForCausalLM.from_pretrained(source, trust_remote_code=cfg.trust_remote_code,
                                                         use_safetensors=True, **kwargs)
        except ModelLoadError:
            raise
        except Exception as exc:
            remedy = load_remedy(source, "check generator.model (a local folder, or a hub id with network access)")
            raise ModelLoadError(
                f"cannot load generator {self.name!r} ({type(exc).__name__}: {str(exc).splitlines()[0][:200]}): {remedy}"
            ) from None
        if self.model_sha256 is None and not Path(source).is_dir():
            self.model_sha256 = hub_weights_sha256(source)
        if not cfg.load_in_4bit:
            model = model.to(device)
        else:
            hardware.prepare_4bit(model, compute_dtype=cfg.bnb_4bit_compute_dtype, remedy="set generator.load_in_4bit: false")
        self.quantization = quantization_summary(
            cfg.load_in_4bit, cfg.bnb_4bit_quant_type, cfg.bnb_4bit_use_double_quant, cfg.bnb_4bit_compute_dtype,
            str(dtype).replace("torch.", ""),
        )
        if cfg.adapter:
            model = self._attach_adapter(model, cfg.adapter)
            self.adapter_sha256 = adapter_weights_sha256(Path(cfg.adapter)) if Path(cfg.adapter).is_dir() else None
        decoding.speed_up_small_batches(model)
        self._model = model.eval()
        self._tokenizer = tokenizer
        self.device = torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu"
        self.dtype, self.cpu = hardware.model_dtype(model), hardware.cpu_capability() if device == "cpu" else None

    def _attach_adapter(self, model: Any, adapter: str) -> Any:
        from ragguard.tuning.adapters import attach_adapter

        # Kept separate from the base (not merged; seed 004), checked against its metadata (seed 001).
        peft_model, self.adapter_problems = attach_adapter(
            model, adapter, base_sha256=self.model_sha256, quantization=self.quantization,
            on_mismatch=self.gen_config.adapter_mismatch,
        )
        return peft_model

    @property
    def tokenizer(self) -> Any:
        self.load()
        return self._tokenizer

    @property
    def model(self) -> Any:
        self.load()
        return self._model

    # -------------------------------------------------------------- generation
    def count_tokens(self, text: str) -> int:
        """The number of this model's tokens in ``text`` (no special tokens)."""
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def encode_prompt(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Token ids of the chat prompt, built with the model's own chat template."""
        return chat_prompt_ids(self.tokenizer, messages)

    def generate_batch(
        self, conversations: Sequence[Sequence[dict[str, str]]], seeds: Sequence[Sequence[int | None]]
    ) -> list[list[Completion]]:
        """Several prompts, each with its own seeds, in one batched pass."""
        prompts = [self.encode_prompt(m) for m in conversations]
        rows, scores = self.decode_batch(prompts, seeds, logprobs=self.record_logprobs)
        tok = self.tokenizer
        return [
            [
                # Stop tokens are never kept, so a row of max_new_tokens tokens never stopped: it was cut.
                Completion(text=tok.decode(r, skip_special_tokens=True).strip(), seed=s,
                           token_logprobs=None if lp is None else tuple(lp),
                           truncated=len(r) >= self.sampling.max_new_tokens)
                for r, s, lp in zip(out, sd, row_scores, strict=True)
            ]
            for out, sd, row_scores in zip(rows, seeds, scores, strict=True)
        ]

    def pass_tokens(self, prompt_tokens: int, rows: int, new_tokens: int) -> int:
        """Key/value positions one prompt decoded ``rows`` times holds in a batched pass.

        With shared-prefix attention the prompt's positions are held once;
        otherwise every row holds its own copy.
        """
        if self._shares_prefix(rows):
            return prompt_tokens + rows * new_tokens
        return rows * (prompt_tokens + new_tokens)

    def _shares_prefix(self, rows_per_prompt: int) -> bool:
        """A pass whose prompts have up to ``rows_per_prompt`` rows uses shared-prefix attention."""
        shared = self.share_prefix and decoding.shares_prefix(self.model)
        return shared and rows_per_prompt >= decoding.min_shared_rows(self.model)

    def _stop_ids(self) -> set[int]:
        ids: set[int] = set()
        for source in (getattr(self.model, "generation_config", None), self.tokenizer):
            value = getattr(source, "eos_token_id", None)
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(v) for v in value)
        for special in ("<|im_end|>", "<|endoftext|>", "<|eot_id|>"):
            tid = self.tokenizer.convert_tokens_to_ids(special)
            unk = getattr(self.tokenizer, "unk_token_id", None)
            if isinstance(tid, int) and tid >= 0 and tid != unk:
                ids.add(tid)
        return ids

    def generate_tokens(
        self, prompt_ids: Sequence[int], seeds: Sequence[int | None], *, ignore_stop: bool = False
    ) -> list[list[int]]:
        """Decode one row per seed from a shared prompt; returns new token ids per row.

        ``ignore_stop`` decodes exactly ``max_new_tokens`` per row (for benchmarks).
        """
        return self.generate_tokens_batch([prompt_ids], [seeds], ignore_stop=ignore_stop)[0]

    def generate_tokens_batch(
        self,
        prompts: Sequence[Sequence[int]],
        seeds: Sequence[Sequence[int | None]],
        *,
        ignore_stop: bool = False,
    ) -> list[list[list[int]]]:
        """Decode ``seeds[p]`` rows for every prompt ``p`` in one pass; new token ids per row.

        See :meth:`decode_batch`, which also returns the tokens' log-probabilities.
        """
        return self.decode_batch(prompts, seeds, ignore_stop=ignore_stop, logprobs=False)[0]

    def decode_batch(
        self,
        prompts: Sequence[Sequence[int]],
        seeds: Sequence[Sequence[int | None]],
        *,
        ignore_stop: bool = False,
        logprobs: bool = True,
    ) -> tuple[list[list[list[int]]], list[list[list[float] | None]]]:
        """Decode ``seeds[p]`` rows for every prompt ``p`` in one pass.

        Returns ``(tokens, logprobs)``: per prompt and row, the new token ids,
        and (with ``logprobs``, else ``None``) the raw log-probability of each of
        them followed by that of the stop token when the row stopped on one
        (see the module docstring). The log-probabilities come from the logits
        each step computes anyway; they change no token.

        Each prompt is encoded once. Where rows can share it
        (:func:`ragguard.generation.decoding.prefill_shared`, CPU), each prompt is
        prefilled on its own and one copy of its cache serves all its seeds;
        otherwise prompts are left-padded to a common length with explicit
        position ids and the cache rows are repeated per seed. Every row
        samples from its own generator. Padding changes
        the shapes of the floating-point sums, which can (rarely) flip a token
        compared with the prompt decoded alone: ``bench/audit_throughput.py``
        measures how often (records of single asks against batched ones).
        """
        import torch

        if len(prompts) != len(seeds):
            raise ValueError("one list of seeds per prompt is required")
        row_prompt = [p for p, sd in enumerate(seeds) for _ in sd]
        flat_seeds = [s for sd in seeds for s in sd]
        outputs: list[list[int]] = [[] for _ in flat_seeds]
        scored: list[list[float]] = [[] for _ in flat_seeds]
        if not flat_seeds:
            return [[] for _ in prompts], [[] for _ in prompts]
        model = self.model
        if model.training:  # a model left in train mode gives dropout-noised answers
            model.eval()
        s = self.sampling
        device = next(model.parameters()).device
        stop = set() if ignore_stop else self._stop_ids()
        width = max(len(p) for p in prompts)
        pad = self._pad_id()
        ids = torch.full((len(prompts), width), pad, dtype=torch.long, device=device)
        mask = torch.zeros((len(prompts), width), dtype=torch.long, device=device)
        history = torch.zeros((len(prompts), width), dtype=torch.long, device=device)
        for p, prompt in enumerate(prompts):
            if not prompt:
                raise ValueError("empty prompt")
            ids[p, width - len(prompt) :] = torch.tensor(list(prompt), dtype=torch.long)
            mask[p, width - len(prompt) :] = 1
            # Pads repeat the prompt's first token so the repetition penalty sees only real tokens.
            history[p] = ids[p].masked_fill(mask[p] == 0, int(prompt[0]))
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        generators = [None if seed is None else torch.Generator(device=device).manual_seed(int(seed)) for seed in flat_seeds]
        n = len(flat_seeds)
        try:
            with torch.inference_mode():
                index = torch.tensor(row_prompt, device=device)
                shared = None
                if self._shares_prefix(max(len(sd) for sd in seeds)):
                    prefilled = decoding.prefill_shared(model, prompts, index, s.max_new_tokens)
                    if prefilled is not None:
                        shared, last = prefilled
                        cache, logits = shared.cache, last[index].float()
                if shared is None:
                    # logits_to_keep=1: the prompt's other positions need no vocabulary projection.
                    out = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True,
                                logits_to_keep=1)
                    cache = decoding.cache_of(out)
                    if row_prompt != list(range(len(prompts))):
                        cache.batch_select_indices(index)
                    if self.preallocate_cache:
                        decoding.preallocate(cache, s.max_new_tokens)
                    logits = out.logits[index, -1, :].float()
                row_mask = mask[index]
                row_history = history[index]
                next_pos = row_mask.sum(-1)
                active = list(range(n))
                cache_kw = decoding.cache_keyword(model)
                for step in range(s.max_new_tokens):
                    scores = _repetition_penalty(logits, row_history, s.repetition_penalty)
                    chosen = self._choose(scores, [flat_seeds[i] for i in active], [generators[i] for i in active])
                    if logprobs:
                        for i, value in zip(active, _token_logprobs(logits, chosen), strict=True):
                            scored[i].append(value)
                    still: list[int] = []
                    keep_rows: list[int] = []
                    for row, (i, token) in enumerate(zip(active, chosen, strict=True)):
                        if token in stop:
                            continue
                        outputs[i].append(token)
                        still.append(i)
                        keep_rows.append(row)
                    if not still or step == s.max_new_tokens - 1:
                        break
                    if len(keep_rows) != len(active):
                        keep = torch.tensor(keep_rows, device=device)
                        if shared is not None:
                            shared.select_rows(keep)
                        else:
                            cache.batch_select_indices(keep)
                        row_mask, row_history, next_pos = row_mask[keep], row_history[keep], next_pos[keep]
                    active = still
                    next_ids = torch.tensor([[outputs[i][-1]] for i in active], dtype=torch.long, device=device)
                    row_history = torch.cat([row_history, next_ids], dim=1)
                    if shared is None:  # the shared-prefix attention keeps the prompts' padding itself
                        row_mask = torch.cat([row_mask, torch.ones_like(next_ids)], dim=1)
                    out = model(
                        input_ids=next_ids,
                        attention_mask=None if shared is not None else row_mask,
                        position_ids=next_pos.unsqueeze(-1),
                        **{cache_kw: cache},
                        use_cache=True,
                        **({"shared_prefix": shared} if shared is not None else {}),
                    )
                    next_pos = next_pos + 1
                    cache = decoding.cache_of(out)
                    logits = out.logits[:, -1, :].float()
        except RuntimeError as exc:
            raise GenerationError(f"generation failed ({str(exc).splitlines()[0][:200]}): "
                                  "lower sampling.samples or max_new_tokens, or use a smaller model") from None
        grouped: list[list[list[int]]] = [[] for _ in prompts]
        grouped_scores: list[list[list[float] | None]] = [[] for _ in prompts]
        for i, p in enumerate(row_prompt):
            grouped[p].append(outputs[i])
            grouped_scores[p].append(scored[i] if logprobs else None)
        return grouped, grouped_scores

    def _pad_id(self) -> int:
        tok = self._tokenizer
        for value in (getattr(tok, "pad_token_id", None), getattr(tok, "eos_token_id", None)):
            if isinstance(value, int):
                return value
        return 0

    def _choose(self, scores: Any, seeds: Sequence[int | None], generators: Sequence[Any]) -> list[int]:
        """The next token of each row: argmax for the greedy row, a seeded draw for the others."""
        import torch

        s = self.sampling
        chosen = [0] * len(seeds)
        sampled = []
        for row, seed in enumerate(seeds):
            if seed is None:
                chosen[row] = int(torch.argmax(scores[row]).item())
            else:
                sampled.append(row)
        if sampled:
            values, ids = _candidates(scores[sampled] if len(sampled) < len(seeds) else scores,
                                      s.temperature, s.top_k, s.top_p)
            probs = torch.softmax(values, dim=-1)
            for j, row in enumerate(sampled):
                pick = torch.multinomial(probs[j], 1, generator=generators[row])
                chosen[row] = int(ids[j, pick].item())
        return chosen


def _token_logprobs(logits: Any, chosen: Sequence[int]) -> list[float]:
    """``log_softmax(logits)[row, chosen[row]]`` per row, from one log-sum-exp (no softmax over the vocabulary kept)."""
    import torch

    picked = logits.gather(1, torch.tensor(list(chosen), device=logits.device).unsqueeze(1)).squeeze(1)
    return (picked - torch.logsumexp(logits, dim=-1)).tolist()


def _repetition_penalty(logits: Any, history: Any, penalty: float) -> Any:
    """CTRL-style penalty: divide positive, multiply negative logits of seen tokens."""
    import torch

    if penalty == 1.0:
        return logits
    logits = logits.clone()
    seen = torch.gather(logits, 1, history)
    seen = torch.where(seen < 0, seen * penalty, seen / penalty)
    return logits.scatter(1, history, seen)


def _candidates(scores: Any, temperature: float, top_k: int, top_p: float) -> tuple[Any, Any]:
    """The tokens a seeded row may draw and their warped scores, best first, row by row.

    Temperature, then top-k, then top-p (nucleus) filtering: the same
    distribution as warping the whole vocabulary, but with top-k on, only
    the k best tokens are sorted and drawn from (the whole-vocabulary sort and
    draw cost about 10 % of a CPU decoding step with 8 rows). Dropped
    candidates get -inf. Returns ``(values, token_ids)``, both of shape
    ``(rows, candidates)``.
    """
    import torch

    scores = scores / temperature
    if top_k and top_k < scores.shape[-1]:
        values, ids = torch.topk(scores, top_k, dim=-1)
    else:
        values, ids = torch.sort(scores, descending=True, dim=-1)
    if top_p < 1.0:
        probs = torch.softmax(values, dim=-1)
        # Drop a token when the mass before it already reaches top_p (the best token always stays).
        values = values.masked_fill(probs.cumsum(dim=-1) - probs >= top_p, float("-inf"))
    return values, ids
