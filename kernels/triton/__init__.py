"""Triton GPU backend of `kernels`: kernel maps, implicit-GEMM convolution, gradients.

Importing this package never fails: on a machine without Triton (CPU CI) `register()` does
nothing and the PyTorch reference stays the only backend. `import kernels` calls `register()`,
which makes "triton" the default backend for CUDA tensors (set `WEAK3D_KERNELS_TRITON=0` to
keep the reference there). See kernels/README.md for the design.
"""

from __future__ import annotations

import importlib.util
import os
import warnings

from kernels.triton.settings import deterministic, set_deterministic

__all__ = ["deterministic", "register", "set_deterministic", "triton_available"]


def triton_available() -> bool:
    return importlib.util.find_spec("triton") is not None


def register() -> bool:
    """Register the Triton backend as the default for "cuda"; False if Triton is missing or off."""
    if os.environ.get("WEAK3D_KERNELS_TRITON", "1") == "0" or not triton_available():
        return False
    try:
        from kernels.triton.backend import TritonBackend
    except Exception as error:  # a broken Triton install must not break `import kernels`
        warnings.warn(f"kernels: Triton backend not registered ({error!r}); CUDA uses the reference",
                      stacklevel=2)
        return False
    from kernels.backend import register_backend

    register_backend("triton", TritonBackend(), device_types=("cuda",))
    return True
