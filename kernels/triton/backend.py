"""The Triton backend object registered with `kernels.backend`."""

from __future__ import annotations

import torch

from kernels.epilogue import NormEpilogue
from kernels.kmap import KernelMap
from kernels.reference import ReferenceBackend, compute_dtype
from kernels.tensor import Stride
from kernels.triton import kmap as gpu_kmap
from kernels.triton.conv import TritonConvFunction, conv_forward

_TRITON_DTYPES = (torch.float16, torch.bfloat16, torch.float32)


class TritonBackend:
    """Sparse convolution and kernel maps in Triton; point<->voxel ops reuse the PyTorch reference.

    Maps are `GPUKernelMap`s (neighbour tables); a map built by the reference backend (a
    `KernelMap`), or float64 features, run through the reference implementation.
    """

    name = "triton"

    def __init__(self) -> None:
        self._reference = ReferenceBackend()

    def build_kernel_map(
        self,
        in_coords: torch.Tensor,
        out_coords: torch.Tensor,
        kernel_size: Stride,
        conv_stride: Stride = (1, 1, 1),
        dilation: Stride = (1, 1, 1),
    ) -> gpu_kmap.GPUKernelMap:
        return gpu_kmap.build_kernel_map(in_coords, out_coords, kernel_size, conv_stride, dilation)

    def downsample_coords(self, coords: torch.Tensor, stride: Stride) -> torch.Tensor:
        return gpu_kmap.downsample_coords(coords, stride)

    def conv(
        self, feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap | gpu_kmap.GPUKernelMap
    ) -> torch.Tensor:
        return self.conv_epilogue(feats, weight, kmap, None)

    def conv_epilogue(
        self, feats: torch.Tensor, weight: torch.Tensor, kmap: KernelMap | gpu_kmap.GPUKernelMap,
        epilogue: NormEpilogue | None,
    ) -> torch.Tensor:
        """`conv`, then an eval-mode BatchNorm (and ReLU): inside the implicit GEMM at inference."""
        if not isinstance(kmap, gpu_kmap.GPUKernelMap) or compute_dtype(feats) not in _TRITON_DTYPES:
            out = self._reference.conv(feats, weight, kmap)  # type: ignore[arg-type]
        elif torch.is_grad_enabled() and (feats.requires_grad or weight.requires_grad):
            out = TritonConvFunction.apply(feats, weight, kmap)
        else:
            return conv_forward(feats, weight, kmap, epilogue)  # inference: no autograd node to build
        return out if epilogue is None else epilogue.apply(out)

    def voxelize(self, point_feats: torch.Tensor, voxel_index: torch.Tensor, n_voxels: int) -> torch.Tensor:
        return self._reference.voxelize(point_feats, voxel_index, n_voxels)

    def devoxelize(
        self, voxel_feats: torch.Tensor, corner_index: torch.Tensor, corner_weights: torch.Tensor
    ) -> torch.Tensor:
        return self._reference.devoxelize(voxel_feats, corner_index, corner_weights)
