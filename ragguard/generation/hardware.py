"""What the CPU runs, and what that means for dtypes and for bitsandbytes' 4-bit layers.

Two things depend on the CPU rather than on the config, and both change tokens:

* **bfloat16 pays only with matrix units.** On a CPU with AMX-BF16, oneDNN
  runs bfloat16 matrix products several times faster than float32 (issue 19
  measured a 3.6x faster prefill of SmolLM2-135M); on an AVX2 CPU, bfloat16 is
  emulated and slower. ``generator.dtype: auto`` asks PyTorch what the CPU
  runs (:func:`auto_cpu_dtype`), never the model name, and the fingerprint
  records the answer (:func:`cpu_capability`).
* **bitsandbytes takes another 4-bit path on AVX512-BF16 CPUs.** In eval mode
  without gradients, ``Linear4bit.forward`` repacks its weights for a fused
  bfloat16 kernel (``_convert_weight_packed_for_cpu``). That kernel computes in
  bfloat16 whatever ``bnb_4bit_compute_dtype`` says, cannot be trained
  through, and needs every layer's input width to be a multiple of the
  64-value quantisation block. :func:`prepare_4bit` checks the widths on every
  CPU (so a model loads alike everywhere) and keeps the plain path where the
  packed one would change what the config asked for.

Everything here imports torch lazily; tests force the answers by
monkeypatching :func:`cpu_features` and :func:`kernel_level`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ragguard.errors import QuantizationError

__all__ = [
    "cpu_features",
    "kernel_level",
    "has_amx_bf16",
    "cpu_capability",
    "auto_cpu_dtype",
    "model_dtype",
    "QUANT_BLOCK",
    "narrow_4bit_layers",
    "prepare_4bit",
    "packed_4bit_layers",
]

# bitsandbytes' 4-bit quantisation block on the CPU (values per absmax scale).
QUANT_BLOCK = 64
# The packed CPU kernel groups output rows in tiles of this many (``block_n`` of the repacking).
_PACKED_TILE = 32


def cpu_features() -> Mapping[str, Any]:
    """The CPU's instruction-set flags as PyTorch's cpuinfo sees them (``torch.cpu.get_capabilities()``)."""
    import torch

    get = getattr(torch.cpu, "get_capabilities", None)
    return get() if callable(get) else {}


def kernel_level() -> str:
    """The vector kernels ATen dispatches to: 'AVX2', 'AVX512', 'DEFAULT', ... (honours ``ATEN_CPU_CAPABILITY``)."""
    import torch

    return str(torch.backends.cpu.get_cpu_capability())


def has_amx_bf16() -> bool:
    """The CPU has AMX tiles with bfloat16 and PyTorch can reach them (through oneDNN)."""
    import torch

    features = cpu_features()
    return bool(features.get("amx_bf16") and features.get("amx_tile")) and torch.backends.mkldnn.is_available()


def cpu_capability() -> str:
    """A short label of what decides the CPU's numerics, e.g. ``'AVX2'`` or ``'AVX512+AVX512-BF16+AMX-BF16'``.

    The ATen kernel level, plus the two bfloat16 features that switch kernels:
    AVX512-BF16 (bitsandbytes' packed 4-bit path) and AMX-BF16 (oneDNN's
    bfloat16 matrix products, and ``dtype: auto``).
    """
    features = cpu_features()
    parts = [kernel_level()]
    if features.get("avx512_bf16"):
        parts.append("AVX512-BF16")
    if has_amx_bf16():
        parts.append("AMX-BF16")
    return "+".join(parts)


def auto_cpu_dtype() -> str:
    """``generator.dtype: auto`` on a CPU: 'bfloat16' with AMX-BF16, else 'float32'."""
    return "bfloat16" if has_amx_bf16() else "float32"


def model_dtype(model: Any) -> str:
    """The dtype of a model's floating-point weights ('float32', 'bfloat16', ...); 4-bit layers are skipped."""
    for param in model.parameters():
        if param.dtype.is_floating_point:
            return str(param.dtype).replace("torch.", "")
    return "unknown"


# ------------------------------------------------------------------ 4-bit layers
def _linear_4bit_layers(model: Any) -> list[tuple[str, Any]]:
    try:
        from bitsandbytes.nn import Linear4bit
    except ImportError:
        return []
    return [(name, m) for name, m in model.named_modules() if isinstance(m, Linear4bit)]


def _block_size(layer: Any) -> int:
    state = getattr(layer.weight, "quant_state", None)
    return int(getattr(state, "blocksize", None) or QUANT_BLOCK)


def narrow_4bit_layers(model: Any) -> list[tuple[str, int, int]]:
    """``(name, input width, block size)`` of every 4-bit layer whose input width is not a multiple of its block."""
    found = []
    for name, layer in _linear_4bit_layers(model):
        block = _block_size(layer)
        if layer.in_features % block:
            found.append((name, int(layer.in_features), block))
    return found


def prepare_4bit(model: Any, *, compute_dtype: str, training: bool = False,
                 remedy: str = "set load_in_4bit: false") -> Any:
    """Check a 4-bit model's layers and pick bitsandbytes' CPU path; returns the model.

    Raises :class:`~ragguard.errors.QuantizationError` (one line: the first bad
    layer, its width, the block size, what to do) when a layer's input width
    is not a multiple of the quantisation block, on every CPU, so a config
    that loads on one machine loads on all. The packed AVX512-BF16 path is
    kept only for inference computing in bfloat16 (what that kernel
    computes in); for training, or another compute dtype, the layers keep the
    plain dequantise-and-multiply path. ``remedy`` is what the message tells
    the user to do (it names the config key of the caller).
    """
    layers = _linear_4bit_layers(model)
    if not layers or all(layer.weight.device.type != "cpu" for _, layer in layers):
        return model  # the CUDA kernels take any width
    narrow = narrow_4bit_layers(model)
    if narrow:
        name, width, block = narrow[0]
        more = f" (and {len(narrow) - 1} more)" if len(narrow) > 1 else ""
        raise QuantizationError(
            f"layer {name!r} is {width} inputs wide{more}, not a multiple of bitsandbytes' {block}-value 4-bit "
            f"quantisation block, which its CPU kernels need: {remedy}, or use a model whose layers are "
            f"multiples of {block} wide"
        )
    keep_packed = not training and compute_dtype == "bfloat16"
    for _, layer in layers:
        if not keep_packed or layer.out_features % _PACKED_TILE:
            layer.support_avx512bf16_for_cpu = False
    return model


def packed_4bit_layers(model: Any) -> int:
    """How many 4-bit layers may take (or took) bitsandbytes' packed AVX512-BF16 CPU path."""
    return sum(bool(getattr(layer, "support_avx512bf16_for_cpu", False)) for _, layer in _linear_4bit_layers(model))
