"""Switches of the Triton backend: deterministic mode and fp32 matmul precision.

Deterministic mode (bit-identical results across runs): on when `set_deterministic(True)` was
called, when the environment variable `WEAK3D_KERNELS_DETERMINISTIC=1` is set, or while
`torch.use_deterministic_algorithms(True)` is in force. Every convolution kernel is deterministic
in both modes (each output element written by one program, sums in a fixed order: offsets for the
forward and input gradient, stream-K segments for the weight gradient, no atomics), so the switch
changes nothing there today; it stays part of the API for kernels that may trade determinism for
speed.

fp32 inputs use TF32 tensor cores when `torch.backends.cuda.matmul.allow_tf32` is True (PyTorch's
own switch, off by default) and exact fp32 ("ieee") otherwise.
"""

from __future__ import annotations

import os

import torch

_deterministic: bool | None = None


def set_deterministic(enabled: bool | None) -> None:
    """Force deterministic mode on or off; None returns to the environment / torch default."""
    global _deterministic
    _deterministic = enabled


def deterministic() -> bool:
    if _deterministic is not None:
        return _deterministic
    if os.environ.get("WEAK3D_KERNELS_DETERMINISTIC", "") not in ("", "0"):
        return True
    return torch.are_deterministic_algorithms_enabled()


def dot_precision(dtype: torch.dtype) -> str:
    """Triton `input_precision` for a dot on `dtype` operands (ignored for 16-bit types)."""
    if dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
        return "ieee"
    return "tf32"
