"""Kernel maps built on the GPU, in the dense neighbour-table layout of implicit GEMM.

`GPUKernelMap` holds `table[n_out, K]` (input row per output row and offset, -1 if absent) and,
for each direction, the rows sorted by their neighbour bitmask so that one GEMM tile holds rows
that need the same offsets (tiles skip offsets no row of theirs has). It also answers the
`KernelMap` interface (pairs grouped by offset, converted lazily) so the reference backend can
run on a map built here.

Building: input coordinates are packed into sorted int64 keys once per coordinate tensor (kept
on the tensor), and one Triton kernel binary-searches every (output, offset) query. No hash table,
so nothing can overflow; the key packing limits coordinates to |c| < 2**17 - 64 and batch < 512,
checked once per coordinate tensor (one host sync); coordinates made here by down-sampling inherit
the check.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch
import triton

from kernels.coords import kernel_offsets
from kernels.kmap import KernelMap
from kernels.tensor import Stride, TensorCache
from kernels.triton import kmap_kernels as kk
from kernels.triton.launch import Launcher

_BLOCK = 256
_REACH = 64  # margin kept free around the coordinates for offsets and strides
_MAX_MASK_VOLUME = 31  # neighbour bitmasks are int32
_PACK = Launcher(kk.pack_keys_kernel)
_UNPACK = Launcher(kk.unpack_keys_kernel)
_QUERY = Launcher(kk.query_kernel)
_TRANSPOSE = Launcher(kk.transpose_table_kernel)
_SORT_TABLE = Launcher(kk.sort_table_kernel)
_MASK_BIT_COUNTS = Launcher(kk.mask_bit_counts_kernel)
_RARITY_KEYS = Launcher(kk.rarity_keys_kernel)
_COUNT_PAIRS = Launcher(kk.count_pairs_kernel)
_WRITE_PAIRS = Launcher(kk.write_pairs_kernel)
_FILL_LEVEL = Launcher(kk.fill_level_kernel)
_PACK_LEVELS = Launcher(kk.pack_levels_kernel)
_RUN_STARTS = Launcher(kk.run_starts_kernel)
_FILL_LEVELS = Launcher(kk.fill_levels_kernel)
_STRIDES: dict[tuple[tuple[Stride, ...], torch.device], torch.Tensor] = {}  # on the device, per list


def _grid(n: int) -> tuple[int]:
    return (max(triton.cdiv(n, _BLOCK), 1),)


def check_range(coords: torch.Tensor, batch_limit: int = kk.BATCH_LIMIT) -> None:
    """Raise unless the coordinates fit the keys (batch below `batch_limit`); one host sync, and
    none again for a tensor that passed with the default limit."""
    default = batch_limit == kk.BATCH_LIMIT
    if (default and getattr(coords, "_weak3d_range_ok", False)) or coords.shape[0] == 0:
        return
    _raise_out_of_range(torch.stack(coords.aminmax(dim=0)).tolist(), batch_limit)  # one sync
    coords._weak3d_range_ok = True  # type: ignore[attr-defined]


def _raise_out_of_range(bounds: list[list[int]], batch_limit: int) -> None:
    """bounds: [[min b, x, y, z], [max b, x, y, z]] of some coordinates."""
    (b_lo, *xyz_lo), (b_hi, *xyz_hi) = bounds
    limit = kk.BIAS - _REACH
    if b_lo < 0 or b_hi >= batch_limit or min(xyz_lo) < -limit or max(xyz_hi) >= limit:
        raise ValueError(
            f"coordinates out of the Triton backend's key range (batch in [0, {batch_limit}), "
            f"|x|, |y|, |z| < {limit}): batch {b_lo}..{b_hi}, xyz {xyz_lo}..{xyz_hi}; "
            "use the reference backend (kernels.backend.use_backend('reference'))"
        )


def pack_keys(coords: torch.Tensor, stride: Stride = (1, 1, 1)) -> torch.Tensor:
    """int64 keys of `floor(coords / stride)` (batch kept); order-preserving for (b, x, y, z)."""
    coords = coords.contiguous()
    keys = torch.empty(coords.shape[0], dtype=torch.int64, device=coords.device)
    if coords.shape[0]:
        _PACK(_grid(coords.shape[0]), coords, keys, keys, coords.shape[0], *stride, 0, 0, CHECK=False,
              BLOCK=_BLOCK)
    return keys


def unpack_keys(keys: torch.Tensor) -> torch.Tensor:
    coords = torch.empty(keys.shape[0], 4, dtype=torch.int32, device=keys.device)
    if keys.shape[0]:
        _UNPACK(_grid(keys.shape[0]), keys, coords, keys.shape[0], BLOCK=_BLOCK)
    return coords


def sorted_keys(coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(sorted keys, row of each sorted key or None if the rows are already sorted); cached."""
    cached = getattr(coords, "_weak3d_sorted_keys", None)
    if cached is None:
        check_range(coords)
        keys, order = torch.sort(pack_keys(coords))
        cached = (keys, order.to(torch.int32))
        coords._weak3d_sorted_keys = cached  # type: ignore[attr-defined]
    return cached


def downsample_coords(coords: torch.Tensor, stride: Stride) -> torch.Tensor:
    """`unique(floor(c / stride))` sorted by (b, x, y, z), as `kernels.coords.downsample_coords`."""
    check_range(coords)
    keys = torch.unique(pack_keys(coords, stride), sorted=True)  # sync: the output size
    return _from_keys(keys)


def _from_keys(keys: torch.Tensor) -> torch.Tensor:
    return _keyed(unpack_keys(keys), keys)


def _keyed(coords: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """`coords` (sorted, made from `keys`) marked with their keys and as range-checked."""
    coords._weak3d_sorted_keys = (keys, None)  # type: ignore[attr-defined]
    coords._weak3d_range_ok = True  # type: ignore[attr-defined]
    return coords


@dataclass
class SortedLevels:
    """Coordinates of several strides before compaction (`sort_levels`).

    keys: [L, n] int64, the sorted keys of every input voxel at each stride, order: [L, n] the input
    row of each; runs: [L, n], runs[l, i] - bases[l] = the number of distinct keys among
    keys[l, :i + 1]; counts: distinct voxels per stride (host), bases: their running sums (host).
    """

    keys: torch.Tensor
    order: torch.Tensor
    runs: torch.Tensor
    counts: list[int]
    bases: list[int]

    def fill(self, level: int, coords: torch.Tensor, keys: torch.Tensor | None = None,
             pad_x0: int = 0, pad_batch: int = 0, pad_spacing: int = 8) -> None:
        """Write a down-sampled level into `coords` [cap, 4] (and its sorted keys into `keys`) in
        one launch: the distinct voxels in key order, then `cap - counts[level]` padding voxels
        (pad_batch, pad_x0 + pad_spacing * j, 0, 0), past every real key."""
        cap, count, n = coords.shape[0], self.counts[level], self.keys.shape[1]
        if cap < count:
            raise ValueError(f"fill: {count} rows do not fit a buffer of {cap}")
        if max(n, cap):
            _FILL_LEVEL(_grid(max(n, cap)), self.keys[level], self.runs[level], coords,
                        coords if keys is None else keys, n, count, cap, self.bases[level], pad_x0,
                        pad_batch, WITH_KEYS=keys is not None, PAD_SPACING=pad_spacing, BLOCK=_BLOCK)

    def fill_all(self, padded: PaddedLevels, coords: torch.Tensor, feats: torch.Tensor,
                 labels: torch.Tensor | None = None, ignore_index: int = -100) -> None:
        """Write every level into the flat buffers of `padded` in one launch (no host values: the
        counts are read from `runs` on the device). Level 0 is the input (`coords`, distinct voxels,
        with `feats` and `labels`) in row order; see kmap_kernels.fill_levels_kernel."""
        n, (cap, width) = self.keys.shape[1], padded.feats.shape
        if n > cap or feats.shape != (n, width) or feats.dtype != padded.feats.dtype:
            raise ValueError(f"fill_all: features {tuple(feats.shape)} {feats.dtype} do not fit "
                             f"{(cap, width)} {padded.feats.dtype}")
        with_labels = labels is not None and padded.labels is not None
        with_mask = padded.mask is not None and padded.count is not None
        _FILL_LEVELS(
            (triton.cdiv(cap, _BLOCK), self.keys.shape[0]),
            coords.contiguous(), feats.contiguous(), labels if with_labels else feats, self.keys, self.order,
            self.runs, padded.table, padded.coords, padded.keys, padded.order, padded.feats,
            padded.labels if with_labels else feats, padded.mask if with_mask else feats,
            padded.count if with_mask else feats, n, width, ignore_index, padded.pad_batch,
            WITH_LABELS=with_labels, WITH_MASK=with_mask, PAD_SPACING=padded.pad_spacing, BLOCK=_BLOCK,
            BLOCK_C=triton.next_power_of_2(max(width, 1)),
        )

    def level(self, level: int) -> torch.Tensor:
        """The distinct coordinates of one stride, sorted, as `downsample_coords` returns them."""
        count = self.counts[level]
        coords = torch.empty(count, 4, dtype=torch.int32, device=self.keys.device)
        keys = torch.empty(count, dtype=torch.int64, device=self.keys.device)
        self.fill(level, coords, keys)
        return _keyed(coords, keys)


@dataclass
class PaddedLevels:
    """Flat buffers that `SortedLevels.fill_all` writes every level into (kernels.graphs.PaddedScan
    keeps per-stride views of them): coords [R, 4], keys [R], mask [R, 1] (float32; None: no
    masks), count [L, 2] (float64; count[l, 0] = real rows of level l); feats, labels and order
    (int32): level 0's. table [L, 2] int64: each level's first row in the flat buffers, its capacity."""

    table: torch.Tensor
    coords: torch.Tensor
    keys: torch.Tensor
    order: torch.Tensor
    feats: torch.Tensor
    labels: torch.Tensor | None
    mask: torch.Tensor | None
    count: torch.Tensor | None
    pad_batch: int
    pad_spacing: int


def sort_levels(coords: torch.Tensor, strides: list[Stride], batch_limit: int) -> SortedLevels:
    """The keys of `coords` at every stride, sorted, with the range check, in one host sync.

    Each level comes straight from `coords` (floor(floor(c / a) / b) = floor(c / ab)); one launch
    packs every level, one batched sort, one launch marks and counts the runs of equal keys, and
    only the counts (and the range flag) go to the host, together.
    """
    n, n_levels = coords.shape[0], len(strides)
    keys = torch.empty(n_levels, n, dtype=torch.int64, device=coords.device)
    if n == 0:
        return SortedLevels(keys, keys.clone(), keys.clone(), [0] * n_levels, [0] * n_levels)
    coords = coords.contiguous()
    cached = (tuple(strides), coords.device)
    if cached not in _STRIDES:
        _STRIDES[cached] = torch.tensor(strides, dtype=torch.int32, device=coords.device)
    info = torch.zeros(1 + n_levels, dtype=torch.int64, device=coords.device)  # range flag, counts
    grid = (triton.cdiv(n, _BLOCK), n_levels)
    _PACK_LEVELS(grid, coords, keys, info, _STRIDES[cached], n, kk.BIAS - _REACH, batch_limit, BLOCK=_BLOCK)
    keys, order = torch.sort(keys, dim=1)
    first = torch.empty_like(keys)
    _RUN_STARTS(grid, keys, first, info, n, BLOCK=_BLOCK)
    runs = torch.cumsum(first.view(-1), dim=0).view(n_levels, n)  # one flat scan: counts run on
    host = info.tolist()  # the one sync
    if host[0]:
        _raise_out_of_range(torch.stack(coords.aminmax(dim=0)).tolist(), batch_limit)
    if batch_limit <= kk.BATCH_LIMIT:
        coords._weak3d_range_ok = True  # type: ignore[attr-defined]
    counts = host[1:]
    bases = [sum(counts[:level]) for level in range(n_levels)]
    return SortedLevels(keys, order, runs, counts, bases)


@dataclass
class MapSide:
    """One direction of a map: rows of `table` (`[n, K]`, -1 = absent) are the outputs of that direction.

    flip: read column `K - 1 - k` for weight row `k` (a symmetric submanifold map read backwards).
    perm: rows ordered by neighbour bitmask, or None (kernels too wide for an int32 bitmask).
    sorted_table `[K, n]` and sorted_mask `[n]`: table and bitmasks permuted by perm (implicit GEMM).
    """

    table: torch.Tensor
    perm: torch.Tensor | None
    flip: bool = False
    sorted_table: torch.Tensor | None = None
    sorted_mask: torch.Tensor | None = None


def _rarity_keys(mask: torch.Tensor, volume: int, keys: torch.Tensor, high: int) -> None:
    """Sort keys of the rows into `keys`: their bitmasks with the rarest offset as the most
    significant bit, and `high` above.

    Any order that groups equal masks is correct. Sorting by the masks themselves puts the bit of
    offset 26 first; putting the rarest first gathers the few rows that have rare offsets, so
    fewer tiles pay for them: about 10 % less tile work on LiDAR scans (1.57 -> 1.39 rows x
    offsets computed per real pair at full resolution, 1.87 -> 1.71 at stride 8, 64-row tiles).
    Ordering those keys as a Gray code rather than as binary numbers takes another 1.5-3.5 % off
    (dense64 at 5 cm: 1.39 -> 1.37 at full resolution, 1.71 -> 1.66 at stride 8, 1.95 -> 1.89
    at stride 16; 128-row tiles 1.84 -> 1.78 and 2.08 -> 2.02).
    """
    if mask.shape[0]:
        counts = torch.zeros(volume, dtype=torch.int32, device=mask.device)
        args = (_grid(mask.shape[0]), mask)
        constexprs = {"K": volume, "K_POW2": triton.next_power_of_2(volume), "BLOCK": _BLOCK}
        _MASK_BIT_COUNTS(*args, counts, mask.shape[0], **constexprs)
        _RARITY_KEYS(*args, counts, keys, mask.shape[0], high, **constexprs)


_SIDES_PER_SORT = 16  # a side's index takes the 4 bits above the up to 27 of its rows' keys


def _sorted_sides(sides: list[tuple[torch.Tensor, torch.Tensor | None]]) -> list[MapSide]:
    """Map sides (table [n, K], bitmask [n] or None) with their rows sorted by neighbour bitmask,
    in one sort for up to 16 sides: each side's index above its keys keeps its rows together. A
    sort is a handful of launches whatever its size, and a network's maps have a dozen sides."""
    out = [MapSide(table, None) for table, _ in sides]
    todo = [i for i, (_, mask) in enumerate(sides) if mask is not None]
    for first in range(0, len(todo), _SIDES_PER_SORT):
        batch = todo[first: first + _SIDES_PER_SORT]
        key_bits = max(sides[i][0].shape[1] for i in batch)
        bits = key_bits + (len(batch) - 1).bit_length()
        # Fewer key bits, fewer radix passes: 8-bit keys sort in one, 16-bit in two.
        dtype = torch.uint8 if bits <= 8 else torch.int16 if bits <= 15 else torch.int32
        sizes = [sides[i][0].shape[0] for i in batch]
        starts = [0, *itertools.accumulate(sizes)]
        keys = torch.empty(starts[-1], dtype=dtype, device=sides[batch[0]][0].device)
        for j, i in enumerate(batch):
            table, mask = sides[i]
            assert mask is not None
            _rarity_keys(mask, table.shape[1], keys[starts[j]: starts[j + 1]], j << key_bits)
        order = torch.argsort(keys)
        for j, i in enumerate(batch):
            table, mask = sides[i]
            assert mask is not None
            n_rows, volume = table.shape
            perm = torch.empty(n_rows, dtype=torch.int32, device=table.device)
            sorted_table = torch.empty(volume, n_rows, dtype=torch.int32, device=table.device)
            sorted_mask = torch.empty_like(mask)
            if n_rows:
                _SORT_TABLE(_grid(n_rows), table, order, mask, sorted_table, sorted_mask, perm, n_rows,
                            starts[j], K=volume, BLOCK=_BLOCK)
            out[i] = MapSide(table, perm, False, sorted_table, sorted_mask)
    return out


def _offset_lists(table: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Compact each table column's present entries (`_MapState.offset_lists`): pairs counted per
    block of rows and offset, one cumulative sum, then each block writes its pairs in place (was a
    segmented sort of the presence flags and a gather: about ten launches per map)."""
    n_rows, volume = table.shape
    rows = torch.empty(volume, n_rows, dtype=torch.int32, device=table.device)
    others = torch.empty_like(rows)
    starts = torch.zeros(volume + 1, dtype=torch.int32, device=table.device)
    if n_rows:
        blocks = _grid(n_rows)
        counts = torch.empty(volume, blocks[0], dtype=torch.int32, device=table.device)
        constexprs = {"K": volume, "K_POW2": triton.next_power_of_2(volume), "BLOCK": _BLOCK}
        table = table.contiguous()
        _COUNT_PAIRS(blocks, table, counts, n_rows, **constexprs)
        ends = torch.cumsum(counts.view(-1), dim=0, dtype=torch.int32)
        _WRITE_PAIRS(blocks, table, ends, rows, others, starts, n_rows, **constexprs)
    return rows, others, starts


class _MapState:
    """Everything shared by a map and its transposed view (built lazily, once)."""

    def __init__(self, forward: MapSide, n_in: int, n_out: int, volume: int, symmetric: bool,
                 identity_offset: int | None) -> None:
        self.forward = forward
        self.n_in, self.n_out, self.volume = n_in, n_out, volume
        self.symmetric = symmetric
        self.identity_offset = identity_offset
        self._backward: MapSide | None = None
        self._lists: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._pairs: KernelMap | None = None

    def backward(self) -> MapSide:
        """The map read from inputs to outputs: table_t[n_in, K]."""
        if self._backward is None:
            if self.symmetric:
                f = self.forward
                self._backward = MapSide(f.table, f.perm, True, f.sorted_table, f.sorted_mask)
            else:
                self._backward = _sorted_sides([self.transposed_table()])[0]
        return self._backward

    def transposed_table(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(table_t [n_in, K], its rows' bitmasks or None): the table read from the inputs."""
        table = self.forward.table
        device = table.device
        table_t = torch.full((self.n_in, self.volume), -1, dtype=torch.int32, device=device)
        write_mask = self.volume <= _MAX_MASK_VOLUME
        mask_t = torch.zeros(self.n_in if write_mask else 1, dtype=torch.int32, device=device)
        if self.n_out and self.n_in:
            _TRANSPOSE(_grid(self.n_out), table, table_t, mask_t, self.n_out, K=self.volume,
                       WRITE_MASK=write_mask, BLOCK=_BLOCK)
        return table_t, mask_t if write_mask else None

    def offset_lists(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The pairs grouped by offset, over the forward table (weight gradient).

        (rows [K, n_out], others [K, n_out], starts [K + 1]): offset k's pairs are
        (rows[k, j], others[k, j]) = (output, input) for j < starts[k + 1] - starts[k], in row order
        (the entries after them are not written).
        """
        if self._lists is None:
            self._lists = _offset_lists(self.forward.table)
        return self._lists

    def pairs(self) -> KernelMap:
        """The reference backend's layout (pairs grouped by offset); syncs once."""
        if self._pairs is None:
            table = self.forward.table
            offset_of_pair, out_index = (table.T >= 0).nonzero(as_tuple=True)
            in_index = table[out_index, offset_of_pair].to(torch.int64)
            counts = tuple(torch.bincount(offset_of_pair, minlength=self.volume).tolist())
            self._pairs = KernelMap(in_index, out_index, counts, self.n_in, self.n_out, self.identity_offset)
        return self._pairs


class GPUKernelMap:
    """A kernel map for the Triton backend; `transposed()` is a view that swaps the directions."""

    def __init__(self, state: _MapState, reverse: bool = False) -> None:
        self._state = state
        self.reverse = reverse

    @property
    def n_in(self) -> int:
        return self._state.n_out if self.reverse else self._state.n_in

    @property
    def n_out(self) -> int:
        return self._state.n_in if self.reverse else self._state.n_out

    @property
    def kernel_volume(self) -> int:
        return self._state.volume

    @property
    def identity_offset(self) -> int | None:
        return self._state.identity_offset

    def transposed(self) -> GPUKernelMap:
        return GPUKernelMap(self._state, not self.reverse)

    def output_side(self) -> MapSide:
        """Table whose rows are this map's outputs (forward pass)."""
        return self._state.backward() if self.reverse else self._state.forward

    def input_side(self) -> MapSide:
        """Table whose rows are this map's inputs (input gradient)."""
        return self._state.forward if self.reverse else self._state.backward()

    def offset_lists(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, bool]:
        """(rows, others, starts, rows_are_outputs) over the stored forward table (weight gradient)."""
        return (*self._state.offset_lists(), not self.reverse)

    # --- the reference `KernelMap` interface -----------------------------------------------
    def _pairs(self) -> KernelMap:
        pairs = self._state.pairs()
        return pairs.transposed() if self.reverse else pairs

    @property
    def in_index(self) -> torch.Tensor:
        return self._pairs().in_index

    @property
    def out_index(self) -> torch.Tensor:
        return self._pairs().out_index

    @property
    def pair_counts(self) -> tuple[int, ...]:
        return self._pairs().pair_counts

    def offset_pairs(self) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
        return self._pairs().offset_pairs()

    def out_in_map(self) -> torch.Tensor:
        return self._pairs().out_in_map()


@dataclass(frozen=True)
class _Offsets:
    device_offsets: torch.Tensor  # [K, 3] int32 on the device, sorted by (x, y, z)
    device_rows: torch.Tensor  # [K] int32: the weight row (offset index k) of each sorted offset
    run: int  # sorted offsets come in runs of this many with the same x, y and z one apart
    reach: int  # largest |offset| on any axis
    zero: int | None  # index of the (0, 0, 0) offset, if any


_OFFSETS: dict[tuple[Stride, Stride, torch.device], _Offsets] = {}


def _offsets(kernel_size: Stride, dilation: Stride, device: torch.device) -> _Offsets:
    # Cached: a host-to-device copy per map would wait for the GPU's queue.
    key = (kernel_size, dilation, device)
    if key not in _OFFSETS:
        host = kernel_offsets(kernel_size, dilation)
        zero = (host == 0).all(dim=1).nonzero().flatten().tolist()
        # Sorted by (x, y, z), neighbours one apart in z are one apart in key: the query kernel
        # searches for the first of a run and steps to the others.
        rows = sorted(range(host.shape[0]), key=lambda k: tuple(host[k].tolist()))
        run = kernel_size[2] if dilation[2] == 1 else 1
        _OFFSETS[key] = _Offsets(host[rows].to(device=device, dtype=torch.int32),
                                 torch.tensor(rows, dtype=torch.int32, device=device), run,
                                 int(host.abs().max()), zero[0] if zero else None)
    return _OFFSETS[key]


@dataclass(frozen=True)
class MapSpec:
    """What `build_kernel_maps` builds: the map from in_coords to out_coords (submanifold when they
    are the same tensor and the stride is 1) and, with `backward`, its transposed side too."""

    in_coords: torch.Tensor
    out_coords: torch.Tensor
    kernel_size: Stride
    conv_stride: Stride = (1, 1, 1)
    dilation: Stride = (1, 1, 1)
    backward: bool = False


def build_kernel_map(
    in_coords: torch.Tensor,
    out_coords: torch.Tensor,
    kernel_size: Stride,
    conv_stride: Stride = (1, 1, 1),
    dilation: Stride = (1, 1, 1),
) -> GPUKernelMap:
    """Same pairs as `kernels.kmap.build_kernel_map`, as a neighbour table built on the device."""
    return build_kernel_maps([MapSpec(in_coords, out_coords, kernel_size, conv_stride, dilation)])[0]


def build_kernel_maps(specs: list[MapSpec]) -> list[GPUKernelMap]:
    """Several maps at once: their sides sorted together (`_sorted_sides`), the transposed sides
    of the specs with `backward` included (else built when first asked for)."""
    states = [_query(spec) for spec in specs]
    sides: list[tuple[torch.Tensor, torch.Tensor | None]] = []
    for spec, (state, mask) in zip(specs, states, strict=True):
        sides.append((state.forward.table, mask))
        if spec.backward and not state.symmetric:
            sides.append(state.transposed_table())
    ready = iter(_sorted_sides(sides))
    maps = []
    for spec, (state, _) in zip(specs, states, strict=True):
        state.forward = next(ready)
        if spec.backward and not state.symmetric:
            state._backward = next(ready)
        maps.append(GPUKernelMap(state))
    return maps


def _query(spec: MapSpec) -> tuple[_MapState, torch.Tensor | None]:
    """A map state with its unsorted forward table (neighbour queries), and the table's bitmasks
    (None: kernels too wide for an int32 bitmask)."""
    in_coords, out_coords, kernel_size, conv_stride, dilation = (
        spec.in_coords, spec.out_coords, spec.kernel_size, spec.conv_stride, spec.dilation)
    device = in_coords.device
    kernel = _offsets(kernel_size, dilation, device)
    offsets = kernel.device_offsets
    volume = offsets.shape[0]
    n_in, n_out = in_coords.shape[0], out_coords.shape[0]
    if kernel.reach + max(conv_stride) >= _REACH:
        raise ValueError(f"kernel reach {kernel_size} x dilation {dilation} too large for the Triton maps")
    write_mask = volume <= _MAX_MASK_VOLUME
    table = torch.empty(n_out, volume, dtype=torch.int32, device=device)
    mask = torch.empty(n_out if write_mask else 1, dtype=torch.int32, device=device)
    if n_in == 0:
        table.fill_(-1)
        mask.zero_()
    elif n_out:
        keys, order = sorted_keys(in_coords)
        check_range(out_coords)
        _QUERY(
            _grid(n_out),
            out_coords.contiguous(), offsets, kernel.device_rows, keys, order if order is not None else keys,
            table, mask, n_out, n_in, max(math.ceil(math.log2(n_in + 1)), 1), *conv_stride,
            K=volume, RUN=kernel.run, HAS_ORDER=order is not None, WRITE_MASK=write_mask, BLOCK=_BLOCK,
        )
    submanifold = in_coords is out_coords and all(s == 1 for s in conv_stride)
    identity_offset = kernel.zero if submanifold and n_out else None
    # A submanifold map with offsets symmetric about 0 (odd kernel) reads backwards as itself with
    # the offsets reversed: no transposed table needed.
    symmetric = submanifold and all(k % 2 == 1 for k in kernel_size)
    state = _MapState(MapSide(table, None), n_in, n_out, volume, symmetric, identity_offset)
    return state, mask if write_mask else None


MapPlan = list[tuple[tuple[Stride, Stride, Stride, Stride], bool]]


def map_plan(kmaps: dict[tuple[Stride, Stride, Stride, Stride], object]) -> MapPlan:
    """The maps a network built (`TensorCache.kmaps`: keyed by input stride, kernel size, conv
    stride and dilation) and whether it read their transposed side: for `build_planned_maps`."""
    return [(key, kmap._state._backward is not None) for key, kmap in kmaps.items()
            if isinstance(kmap, GPUKernelMap)]


def build_planned_maps(caches: TensorCache, plan: MapPlan) -> None:
    """Build the maps of `plan` on the coordinates in `caches` in one go (their sides sorted
    together) and store them there, where the network's layers look for them."""
    specs = []
    for (in_stride, kernel_size, conv_stride, dilation), backward in plan:
        out_stride = tuple(a * b for a, b in zip(in_stride, conv_stride, strict=True))
        specs.append(MapSpec(caches.coords[in_stride], caches.coords[out_stride], kernel_size, conv_stride,
                             dilation, backward))
    for (key, _), kmap in zip(plan, build_kernel_maps(specs), strict=True):
        caches.kmaps[key] = kmap
