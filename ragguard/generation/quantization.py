"""How a generator's base weights are quantized (bitsandbytes 4-bit for QLoRA).

One builder for the loading config, used by inference, tuning and merging,
and one summary that adapter metadata records and compares.
"""

from __future__ import annotations

from typing import Any

from ragguard.errors import ModelLoadError

__all__ = ["bnb_4bit_config", "quantization_summary"]


def bnb_4bit_config(quant_type: str, double_quant: bool, compute_dtype: str) -> Any:
    """The ``BitsAndBytesConfig`` of a 4-bit base (QLoRA)."""
    try:
        import bitsandbytes  # noqa: F401
        import torch
        from transformers import BitsAndBytesConfig
    except ImportError:
        raise ModelLoadError('4-bit loading needs bitsandbytes: run `pip install "ragguard[qlora]"`') from None
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=quant_type,
        bnb_4bit_use_double_quant=double_quant,
        bnb_4bit_compute_dtype=getattr(torch, compute_dtype),
    )


def quantization_summary(load_in_4bit: bool, quant_type: str, double_quant: bool, compute_dtype: str,
                         dtype: str) -> dict[str, Any]:
    """How a base's weights are held, in the form adapter metadata records and compares.

    A 4-bit base: the bitsandbytes settings. Otherwise: the weights' dtype.
    """
    if load_in_4bit:
        return {"method": "bitsandbytes-4bit", "quant_type": quant_type, "double_quant": bool(double_quant),
                "compute_dtype": compute_dtype}
    return {"method": "none", "dtype": dtype}
