"""Choice of implementation per device: the seam where a Triton GPU backend will plug in.

Every operator in `kernels.functional` asks `get_backend(device)` for its implementation. The
PyTorch reference (`kernels.reference.ReferenceBackend`) is the default everywhere and the oracle
that other backends are tested against. A faster backend registers itself for a device type:

    register_backend("triton", TritonBackend(), device_types=("cuda",))

and `use_backend("reference")` forces the oracle (e.g. in parity tests). The environment
variable `WEAK3D_KERNELS_BACKEND` names a backend to use on every device.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Protocol

import torch

from kernels.kmap import KernelMap
from kernels.reference import ReferenceBackend


class SparseBackend(Protocol):
    """What a backend implements; every method must be differentiable (autograd)."""

    name: str

    def conv(self, feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap) -> torch.Tensor: ...

    def voxelize(
        self, point_feats: torch.Tensor, voxel_index: torch.Tensor, n_voxels: int
    ) -> torch.Tensor: ...

    def devoxelize(
        self, voxel_feats: torch.Tensor, corner_index: torch.Tensor, corner_weights: torch.Tensor
    ) -> torch.Tensor: ...


_BACKENDS: dict[str, SparseBackend] = {"reference": ReferenceBackend()}
_DEFAULT_FOR_DEVICE: dict[str, str] = {}
_forced: list[str] = []


def register_backend(name: str, backend: SparseBackend, device_types: Sequence[str] = ()) -> None:
    """Make `backend` available as `name`, and the default for `device_types`."""
    _BACKENDS[name] = backend
    for device_type in device_types:
        _DEFAULT_FOR_DEVICE[device_type] = name


def available_backends() -> list[str]:
    return sorted(_BACKENDS)


def _lookup(name: str) -> SparseBackend:
    if name not in _BACKENDS:
        raise KeyError(f"unknown kernels backend {name!r}; available: {available_backends()}")
    return _BACKENDS[name]


def get_backend(device: torch.device) -> SparseBackend:
    if _forced:
        return _lookup(_forced[-1])
    from_env = os.environ.get("WEAK3D_KERNELS_BACKEND")
    if from_env:
        return _lookup(from_env)
    return _lookup(_DEFAULT_FOR_DEVICE.get(device.type, "reference"))


@contextmanager
def use_backend(name: str) -> Iterator[SparseBackend]:
    """Run the enclosed code with backend `name` on every device."""
    backend = _lookup(name)
    _forced.append(name)
    try:
        yield backend
    finally:
        _forced.pop()
