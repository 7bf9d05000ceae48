"""Sparse voxel tensors and point tensors (torchsparse v2.1 conventions).

A `SparseTensor` holds one feature row per active voxel and int32 coordinates `(batch, x, y, z)`.
Coordinates are *compacted* at each tensor stride: a voxel of a stride-`s` tensor has coordinates
`floor(c / s)` of its stride-1 children (torchsparse v2.1; v1.4 kept `floor(c / s) * s`).

Tensors derived from one another (by convolution, normalisation, `cat`, point<->voxel ops) share
one `TensorCache` *by reference*, so a kernel map built by the first layer at a stride is found
by every later layer, and a transposed convolution finds the coordinates and map stored by the
matching down-sampling convolution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

Stride = tuple[int, int, int]


def as_triple(value: int | Sequence[int], name: str = "value") -> Stride:
    """Return `value` as a 3-tuple of ints (an int is repeated on the three axes)."""
    if isinstance(value, int):
        return (value, value, value)
    triple = tuple(int(v) for v in value)
    if len(triple) != 3:
        raise ValueError(f"{name} must be an int or 3 ints, got {value!r}")
    return triple  # type: ignore[return-value]


@dataclass
class TensorCache:
    """State shared by all tensors derived from one input.

    coords: voxel coordinates per tensor stride.
    kmaps: kernel maps keyed by (input stride, kernel size, conv stride, dilation).
    row_masks: which rows are real when a graph pads the voxels of a stride (BatchNorm's statistics).
    """

    coords: dict[Stride, torch.Tensor] = field(default_factory=dict)
    kmaps: dict[tuple[Stride, Stride, Stride, Stride], Any] = field(default_factory=dict)
    # Padded tensors (kernels.graphs): per stride, (row mask [N, 1] float, number of real rows).
    row_masks: dict[Stride, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)


class SparseTensor:
    """Features `[N, C]` on active voxels with int32 coordinates `[N, 4]` = `(batch, x, y, z)`."""

    def __init__(
        self,
        feats: torch.Tensor,
        coords: torch.Tensor,
        stride: int | Sequence[int] = 1,
        caches: TensorCache | None = None,
    ) -> None:
        if coords.dim() != 2 or coords.shape[1] != 4:
            raise ValueError(f"coords must be [N, 4] (batch, x, y, z), got shape {tuple(coords.shape)}")
        if feats.shape[0] != coords.shape[0]:
            raise ValueError(f"feats has {feats.shape[0]} rows but coords has {coords.shape[0]}")
        if coords.dtype != torch.int32:
            raise TypeError(f"coords must be int32, got {coords.dtype}")
        self.feats = feats
        self.coords = coords
        self.stride: Stride = as_triple(stride, "stride")
        self._caches = caches if caches is not None else TensorCache()
        self._caches.coords.setdefault(self.stride, coords)

    # torchsparse spells these F, C and s; models written against it use both spellings.
    @property
    def F(self) -> torch.Tensor:  # noqa: N802 - torchsparse's name
        return self.feats

    @F.setter
    def F(self, feats: torch.Tensor) -> None:  # noqa: N802
        self.feats = feats

    @property
    def C(self) -> torch.Tensor:  # noqa: N802
        return self.coords

    @property
    def s(self) -> Stride:
        return self.stride

    def replace_feats(self, feats: torch.Tensor) -> SparseTensor:
        """A tensor on the same voxels (and the same caches) with new features."""
        return SparseTensor(feats, self.coords, self.stride, self._caches)

    def check_same_voxels(self, other: SparseTensor) -> None:
        """Raise unless `other` has the same voxels in the same order (features can be combined)."""
        if self.coords is not other.coords and not torch.equal(self.coords, other.coords):
            raise ValueError("cannot add sparse tensors on different voxels")

    def __add__(self, other: SparseTensor) -> SparseTensor:
        self.check_same_voxels(other)
        return self.replace_feats(self.feats + other.feats)

    def __repr__(self) -> str:
        return (
            f"SparseTensor(n={self.coords.shape[0]}, channels={self.feats.shape[1]}, "
            f"stride={self.stride}, device={self.feats.device})"
        )


@dataclass
class PointLookup:
    """Where the points of a `PointTensor` fall at one voxel stride.

    voxel_index: `[N]` index of the voxel containing each point (the stride's voxel order).
    corner_index / corner_weights: `[N, 8]` trilinear neighbours (-1 = absent) and their weights.
    """

    voxel_index: torch.Tensor | None = None
    corner_index: torch.Tensor | None = None
    corner_weights: torch.Tensor | None = None


class PointTensor:
    """Per-point features `[N, C]` with float coordinates `[N, 4]` = `(batch, x, y, z)`.

    Coordinates are in stride-1 voxel units (points of a voxel `v` have `floor(xyz) == v`).
    `lookups` caches, per voxel stride, the point->voxel assignment and trilinear corners; it is
    shared by reference between point tensors derived from one another, as torchsparse does.
    """

    def __init__(
        self,
        feats: torch.Tensor,
        coords: torch.Tensor,
        lookups: dict[Stride, PointLookup] | None = None,
    ) -> None:
        if coords.dim() != 2 or coords.shape[1] != 4:
            raise ValueError(f"point coords must be [N, 4] (batch, x, y, z), got {tuple(coords.shape)}")
        if feats.shape[0] != coords.shape[0]:
            raise ValueError(f"feats has {feats.shape[0]} rows but coords has {coords.shape[0]}")
        if not coords.is_floating_point():
            raise TypeError(f"point coords must be floating point, got {coords.dtype}")
        self.feats = feats
        self.coords = coords
        self.lookups: dict[Stride, PointLookup] = lookups if lookups is not None else {}

    @property
    def F(self) -> torch.Tensor:  # noqa: N802
        return self.feats

    @F.setter
    def F(self, feats: torch.Tensor) -> None:  # noqa: N802
        self.feats = feats

    @property
    def C(self) -> torch.Tensor:  # noqa: N802
        return self.coords

    def lookup(self, stride: Stride) -> PointLookup:
        return self.lookups.setdefault(stride, PointLookup())

    def replace_feats(self, feats: torch.Tensor) -> PointTensor:
        """Same points and the same lookup caches, new features."""
        return PointTensor(feats, self.coords, self.lookups)

    def __repr__(self) -> str:
        return f"PointTensor(n={self.coords.shape[0]}, channels={self.feats.shape[1]})"


def cat(tensors: Sequence[SparseTensor]) -> SparseTensor:
    """Concatenate features of tensors on the same voxels (coords, stride and caches of the first)."""
    if not tensors:
        raise ValueError("cat needs at least one tensor")
    first = tensors[0]
    for other in tensors[1:]:
        if other.stride != first.stride or other.coords.shape[0] != first.coords.shape[0]:
            raise ValueError(
                f"cat needs tensors on the same voxels: stride {other.stride} with "
                f"{other.coords.shape[0]} voxels vs stride {first.stride} with {first.coords.shape[0]}"
            )
    return first.replace_feats(torch.cat([t.feats for t in tensors], dim=1))
