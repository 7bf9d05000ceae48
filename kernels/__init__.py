"""weak3d's sparse tensors and sparse convolution, with an API that reads like torchsparse 2.x.

Semantics are torchsparse **v2.1**: coordinates are int32 `(batch, x, y, z)` (batch first) and are
compacted at each stride (a stride-`s` voxel has coordinates `floor(c / s)`); kernel weights are
`[K, Cin, Cout]` with torchsparse's kernel-offset order. See kernels/README.md.

    import kernels
    x = kernels.SparseTensor(feats, coords)              # coords int32 [N, 4]
    y = kernels.nn.Conv3d(4, 32, kernel_size=3)(x)       # submanifold
    z = kernels.nn.Conv3d(32, 64, 2, stride=2)(y)        # down-sampling
    u = kernels.nn.Conv3d(64, 32, 2, stride=2, transposed=True)(z)   # back on y's voxels

The implementation is chosen per device by `kernels.backend`: the PyTorch reference on the CPU,
the Triton backend (`kernels.triton`) on CUDA when Triton is installed.
"""

from kernels import backend, functional, nn
from kernels.coords import kernel_offsets
from kernels.kmap import KernelMap, build_kernel_map
from kernels.quantize import sparse_collate, sparse_quantize
from kernels.tensor import PointTensor, SparseTensor, TensorCache, cat
from kernels.triton import register as _register_triton

_register_triton()  # default backend for CUDA tensors when Triton is installed; no-op otherwise

__all__ = [
    "KernelMap",
    "PointTensor",
    "SparseTensor",
    "TensorCache",
    "backend",
    "build_kernel_map",
    "cat",
    "functional",
    "kernel_offsets",
    "nn",
    "sparse_collate",
    "sparse_quantize",
]
