"""Keeping third-party log noise that is no error off the user's stderr."""

from __future__ import annotations

import logging
import os

__all__ = ["quiet_third_party_logs"]


class _DropBitsandbytesKernelNotice(logging.Filter):
    """Drops bitsandbytes' notice that the optional ``kernels`` package is missing.

    bitsandbytes logs it at import on AVX512-BF16 CPUs, and it is imported by every
    command that loads the embedder (sentence-transformers -> transformers -> peft ->
    bitsandbytes), so it cannot be avoided by importing bitsandbytes only for 4-bit.
    The notice is no error (the slower built-in kernel is used); a newcomer reads it as one.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to load CPU gemm_4bit_forward")


def quiet_third_party_logs() -> None:
    """Keep third-party log noise that is no error off ragguard's stderr (kept with ``RAGGUARD_DEBUG=1``)."""
    if os.environ.get("RAGGUARD_DEBUG"):
        return
    bnb = logging.getLogger("bitsandbytes.backends.cpu.ops")
    if not any(isinstance(f, _DropBitsandbytesKernelNotice) for f in bnb.filters):
        bnb.addFilter(_DropBitsandbytesKernelNotice())
