"""A tiny randomly initialised Qwen2 with a real tokenizer and chat template, saved to a folder.

Nothing is downloaded: the byte-level BPE tokenizer is trained in a few
milliseconds on the example handbook (English and Chinese), and the model is
built from a ``Qwen2Config``, so the real Qwen2 code path and its projection
names (q/k/v/o/gate/up/down_proj) are what the tuning tests exercise.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The ChatML layout Qwen2 models use (written here, not copied from a model repository).
CHATML = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def tiny_tokenizer(vocab_size: int = 1200):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    texts = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "examples" / "handbook").glob("*.md"))]
    tok.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   chat_template=CHATML)


def save_tiny_qwen2(folder: Path, *, seed: int = 0, hidden: int = 32, layers: int = 2, dropout: float = 0.0) -> Path:
    """Write a tiny random Qwen2 (fp32 safetensors) and its tokenizer to ``folder``."""
    import torch
    import transformers

    tokenizer = tiny_tokenizer()
    config = transformers.Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024, attention_dropout=dropout,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, bos_token_id=None,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = transformers.Qwen2ForCausalLM(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder), safe_serialization=True)
    tokenizer.save_pretrained(str(folder))
    return folder


# ------------------------------------------------------------------ fixtures
# Session-scoped (registered in conftest.py): tuning runs are shared by the tests that only read them.
import json  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402

import pytest  # noqa: E402

SHORT_SYSTEM = "Answer from the context."

RAG_RECORDS = [
    {"question": "Do I need an employment certificate without an Eastbridge card?",
     "context": "Without an Eastbridge Bank debit card, request an employment certificate on form HR-07.",
     "answer": "Yes, request it on form HR-07."},
    {"question": "Do I need a certificate if I have an Eastbridge card?",
     "context": "With an Eastbridge Bank debit card you do not need an employment certificate.",
     "answer": "No, you do not need one."},
    {"question": "How many days of annual leave?", "context": "Full-time staff get 25 days of annual leave.",
     "answer": "25 days a year."},
    {"question": "年假有几天？", "context": "全职员工每年享有25个工作日的带薪年假。", "answer": "每年25个工作日。"},
    {"question": "Where is the Riverside branch?", "context": "The Riverside branch is at 12 Quay Street.",
     "answer": "At 12 Quay Street."},
]
INSTRUCTION_RECORDS = [
    {"instruction": "Answer in one sentence.", "input": "How long is a VPN session?", "output": "12 hours at most."},
    {"instruction": "Answer in one sentence.", "input": "When are claims paid?", "output": "On the 25th."},
    {"instruction": "用一句话回答。", "input": "结转年假何时休完？", "output": "3月31日前。"},
]


def write_records(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


def tune_overrides(base: Path, **extra: object) -> dict:
    """A few cheap, reproducible steps on the tiny model."""
    return {
        "model.base": str(base), "model.load_in_4bit": False, "train.max_steps": 4, "train.max_length": 160,
        "train.batch_size": 2, "train.gradient_accumulation_steps": 1, "train.save_steps": 2,
        "train.fp32": True, "train.deterministic": True, "train.probe_prompts": 2, "train.probe_tokens": 8, "prompt.system": SHORT_SYSTEM,
        **{k.replace("__", "."): v for k, v in extra.items()},
    }


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2"))


@pytest.fixture(scope="session")
def tune_data_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_records(tmp_path_factory.mktemp("data") / "mixed.jsonl", RAG_RECORDS + INSTRUCTION_RECORDS)


@pytest.fixture(scope="session")
def fp32_adapter(tiny_qwen2_dir: Path, tune_data_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ragguard.tuning.config import TuneConfig
    from ragguard.tuning.tune import tune

    out = tmp_path_factory.mktemp("adapters") / "fp32"
    tune(tune_data_file, out, TuneConfig().with_overrides(tune_overrides(tiny_qwen2_dir)), show_progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_qwen2_wide_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Qwen2 at width 64: bitsandbytes' CPU kernels need layers a multiple of its 64-value 4-bit block."""
    return save_tiny_qwen2(tmp_path_factory.mktemp("tiny-qwen2-64"), hidden=64)


# bitsandbytes picks its CPU 4-bit path per layer from `has_avx512bf16()` when the layer is built
# (`Linear4bit.support_avx512bf16_for_cpu`): on AVX512-BF16 CPUs, eval-mode forwards without gradients
# repack the weights for a fused bfloat16 kernel. Every test that uses `bnb_cpu_path` runs once with each
# path forced, so a machine of either kind covers the other's. The packed kernel itself (registered only
# on AVX512-BF16 CPUs) cannot run elsewhere: it dies of SIGILL on an AVX2 CPU.
BNB_CPU_PATHS = ("plain", "avx512bf16")


@contextmanager
def forced_bnb_cpu_path(path: str) -> Iterator[None]:
    """Make 4-bit layers built inside the block take bitsandbytes' ``path`` ('plain' or 'avx512bf16')."""
    bnb_modules = pytest.importorskip("bitsandbytes.nn.modules")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bnb_modules, "has_avx512bf16", lambda: path == "avx512bf16")
        yield


@pytest.fixture(scope="session", params=BNB_CPU_PATHS)
def bnb_cpu_path(request: pytest.FixtureRequest) -> str:
    pytest.importorskip("bitsandbytes")
    return str(request.param)


@pytest.fixture(autouse=True)
def _forced_bnb_cpu_path(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that depends on ``bnb_cpu_path`` (directly or through ``nf4_adapter``) runs with it forced."""
    if "bnb_cpu_path" not in request.fixturenames:
        yield
        return
    with forced_bnb_cpu_path(request.getfixturevalue("bnb_cpu_path")):
        yield


@pytest.fixture(scope="session")
def nf4_adapter(tiny_qwen2_wide_dir: Path, tune_data_file: Path, tmp_path_factory: pytest.TempPathFactory,
                bnb_cpu_path: str) -> Path:
    """QLoRA: the 64-wide tiny base in 4-bit NF4 (bitsandbytes on the CPU), float32 compute, two steps."""
    from ragguard.tuning.config import TuneConfig
    from ragguard.tuning.tune import tune

    out = tmp_path_factory.mktemp("adapters") / f"nf4-{bnb_cpu_path}"
    overrides = tune_overrides(tiny_qwen2_wide_dir, model__load_in_4bit=True, train__max_steps=2,
                               train__probe_prompts=1)
    with forced_bnb_cpu_path(bnb_cpu_path):
        tune(tune_data_file, out, TuneConfig().with_overrides(overrides), show_progress=False)
    return out
