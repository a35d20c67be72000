"""What the hardware can compute natively (bf16 units)."""

from __future__ import annotations

from pathlib import Path


def cpu_has_bf16() -> bool:
    """Whether this CPU has native bf16 units (AVX512-BF16 or AMX), from /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
