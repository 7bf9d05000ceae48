"""Integer coordinate utilities: kernel offsets in torchsparse order, linear keys, down-sampling."""

from __future__ import annotations

import torch

from kernels.tensor import Stride

# Keys must stay below 2**63; leave headroom for the offset arithmetic done on them.
_MAX_KEY_SPACE = 2**62


def kernel_offsets(
    kernel_size: Stride, dilation: Stride = (1, 1, 1), device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Offsets `[K, 3]` (x, y, z) of a kernel, in torchsparse's order.

    Per axis the offsets are `arange(-size // 2 + 1, size // 2 + 1) * dilation` (3 -> -1, 0, 1;
    2 -> 0, 1). Odd kernels enumerate x fastest (MinkowskiEngine's order), even kernels z fastest;
    a mixed kernel follows its x size. Weight row `k` multiplies the neighbour at offset `k`.
    """
    axes = [
        torch.arange(-size // 2 + 1, size // 2 + 1, dtype=torch.int64) * step
        for size, step in zip(kernel_size, dilation, strict=True)
    ]
    if kernel_size[0] % 2 == 1:
        # meshgrid over (z, y, x): the last axis (x) varies fastest.
        gz, gy, gx = torch.meshgrid(axes[2], axes[1], axes[0], indexing="ij")
    else:
        gx, gy, gz = torch.meshgrid(axes[0], axes[1], axes[2], indexing="ij")
    offsets = torch.stack([gx.reshape(-1), gy.reshape(-1), gz.reshape(-1)], dim=1)
    return offsets.to(device)


class CoordinateKeys:
    """Exact linearisation of `(batch, x, y, z)` coordinates into int64 keys.

    The box `[low, high]` must contain every coordinate that will be keyed, including neighbours
    reached by kernel offsets, so that `key(c + d) == key(c) + delta(d)` holds without wrap-around.
    """

    def __init__(self, low: torch.Tensor, high: torch.Tensor) -> None:
        # low/high: int64 [4] (batch, x, y, z) inclusive bounds.
        self.low = low.to(torch.int64)
        extent = (high.to(torch.int64) - self.low + 1).tolist()
        space = 1
        for n in extent:
            space *= max(int(n), 1)
        if space >= _MAX_KEY_SPACE:
            raise ValueError(
                f"coordinate box {extent} (batch, x, y, z) is too large for 64-bit keys; "
                "shift coordinates towards 0 or use a coarser voxel size"
            )
        # Row-major weights: batch most significant, z least, so sorted keys sort (b, x, y, z).
        self.weights = torch.tensor(
            [extent[1] * extent[2] * extent[3], extent[2] * extent[3], extent[3], 1],
            dtype=torch.int64,
            device=self.low.device,
        )
        self.extent = extent

    @staticmethod
    def covering(*coord_sets: torch.Tensor, margin: torch.Tensor | None = None) -> CoordinateKeys:
        """Keys for a box around all `coord_sets` (`[N, 4]`), widened by `margin` (`[3]`) in x, y, z."""
        nonempty = [c.to(torch.int64) for c in coord_sets if c.shape[0] > 0]
        device = coord_sets[0].device
        if not nonempty:
            zeros = torch.zeros(4, dtype=torch.int64, device=device)
            return CoordinateKeys(zeros, zeros)
        low = torch.stack([c.min(dim=0).values for c in nonempty]).min(dim=0).values
        high = torch.stack([c.max(dim=0).values for c in nonempty]).max(dim=0).values
        if margin is not None:
            pad = torch.cat([torch.zeros(1, dtype=torch.int64, device=device), margin.to(device)])
            low, high = low - pad, high + pad
        return CoordinateKeys(low, high)

    def encode(self, coords: torch.Tensor) -> torch.Tensor:
        return ((coords.to(torch.int64) - self.low) * self.weights).sum(dim=1)

    def delta(self, offsets_xyz: torch.Tensor) -> torch.Tensor:
        """Key differences `[K]` for spatial offsets `[K, 3]`."""
        return (offsets_xyz.to(torch.int64) * self.weights[1:]).sum(dim=1)

    def decode(self, keys: torch.Tensor) -> torch.Tensor:
        columns = []
        rest = keys
        for w in self.weights.tolist():
            columns.append(torch.div(rest, w, rounding_mode="floor"))
            rest = rest - columns[-1] * w
        return (torch.stack(columns, dim=1) + self.low).to(torch.int32)


def downsample_coords(coords: torch.Tensor, stride: Stride) -> torch.Tensor:
    """Coarse voxels `unique(floor(c / stride))` per batch, sorted by (batch, x, y, z).

    This is torchsparse's rule for kernel_size == stride (MinkUNet's k2 s2) and MinkowskiEngine's
    rule for every kernel size; it is used here for every strided convolution.
    """
    step = torch.tensor([1, *stride], dtype=torch.int64, device=coords.device)
    coarse = torch.div(coords.to(torch.int64), step, rounding_mode="floor")
    keys = CoordinateKeys.covering(coarse)
    return keys.decode(torch.unique(keys.encode(coarse), sorted=True))
