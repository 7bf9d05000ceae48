"""Cheaper launches of compiled Triton kernels.

`JITFunction.__getitem__(grid)(...)` binds and specialises every argument and builds a cache key
on each call; at MinkUNet sizes (tens of microseconds of GPU work per kernel) that host time is a
large part of a layer. `Launcher` does Triton's launch once per distinct specialisation, keeps the
compiled kernel, and later calls its launcher directly. The key holds everything Triton
specialises on: tensor dtypes and 16-byte alignment, exact values of the integers it specialises
(so the ==1 / divisible-by-16 cases are the same), the 32/64-bit range of `do_not_specialize`
integers, the constexprs and launch options, and the device. Set `WEAK3D_TRITON_FAST_LAUNCH=0`
to always go through `JITFunction` (and under `TRITON_INTERPRET=1` it always does).
"""

from __future__ import annotations

import os
from typing import Any

import torch


def _fast_enabled() -> bool:
    if os.environ.get("TRITON_INTERPRET") == "1":
        return False
    return os.environ.get("WEAK3D_TRITON_FAST_LAUNCH", "1") != "0"


class Launcher:
    """`Launcher(kernel)(grid, *runtime_args, **constexprs_and_options)`."""

    _OPTIONS = ("num_warps", "num_stages", "num_ctas")

    def __init__(self, kernel: Any) -> None:
        self.kernel = kernel
        names = list(kernel.arg_names)
        params = getattr(kernel, "params", None)
        self.fast = params is not None  # the interpreter's functions have no compiled launcher
        if params is None:
            self.n_runtime = sum(1 for _ in names)  # checked loosely below
            return
        self.constexpr_names = [p.name for p in params if p.is_constexpr]
        self.n_runtime = len(names) - len(self.constexpr_names)
        # Constexprs must follow the runtime arguments (true of every kernel in this package).
        assert all(p.is_constexpr for p in params[self.n_runtime:]), kernel
        dns = set(kernel.do_not_specialize or [])
        self.loose = tuple(name in dns for name in names[: self.n_runtime])
        self.cache: dict[tuple[Any, ...], Any] = {}

    def _key(self, device: int, args: tuple[Any, ...], meta: dict[str, Any]) -> tuple[Any, ...]:
        parts: list[Any] = [device]
        for arg, loose in zip(args, self.loose, strict=True):
            if isinstance(arg, torch.Tensor):
                parts.append(arg.dtype)
                parts.append(arg.data_ptr() % 16 == 0)
            elif loose and type(arg) is int:
                parts.append(-(2**31) <= arg < 2**31)
            else:
                parts.append(arg)
        # Keyword order is fixed per call site; another order only costs one more cache entry.
        parts.extend(meta.items())
        return tuple(parts)

    def __call__(self, grid: tuple[int, ...], *args: Any, **meta: Any) -> None:
        if not self.fast or not _fast_enabled():
            self.kernel[grid](*args, **meta)
            return
        if len(args) != self.n_runtime:
            raise TypeError(f"{self.kernel}: {len(args)} runtime arguments, expected {self.n_runtime}")
        device = torch.cuda.current_device()
        key = self._key(device, args, meta)
        entry = self.cache.get(key)
        if entry is None:
            compiled = self.kernel[grid](*args, **meta)  # compiles (if needed) and launches
            if hasattr(compiled, "packed_metadata"):
                self.cache[key] = (compiled, [meta[name] for name in self.constexpr_names])
            return
        compiled, constexprs = entry
        stream = torch._C._cuda_getCurrentRawStream(device)  # what Triton's own launch reads
        compiled.run(grid[0], grid[1] if len(grid) > 1 else 1, grid[2] if len(grid) > 2 else 1, stream,
                     compiled.function, compiled.packed_metadata, None, None, None, *args, *constexprs)


_SM_COUNT: dict[int, int] = {}


def sm_count(device: torch.device) -> int:
    """Multiprocessors of a CUDA device (cached); 4 under the Triton interpreter (CPU tensors),
    where it only sets how work is split."""
    if device.type != "cuda":
        return 4
    index = device.index if device.index is not None else torch.cuda.current_device()
    if index not in _SM_COUNT:
        _SM_COUNT[index] = torch.cuda.get_device_properties(index).multi_processor_count
    return _SM_COUNT[index]
