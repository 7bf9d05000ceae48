"""Sparse networks through CUDA graphs: one replay per scan instead of hundreds of launches.

At LiDAR sizes a layer's GPU work is tens of microseconds while its Python and launch overhead is
larger, so eager execution is bound by the host. A CUDA graph replays a whole forward pass (or
training step) in one call but needs fixed sizes, and voxel counts change with every scan. Here
the voxels of each stride are padded up to a bucket (a multiple of `granularity` rows), so one
graph serves every scan whose counts fall into the same buckets:

* eagerly, per scan: the coordinate range check and the sorted keys of every stride the network
  uses, the input's included (one batched sort; their sizes: one host sync for all of them), then
  one launch that writes every stride's voxels, sorted keys, padding and row masks, and the
  features and labels, into the graph's buffers;
* inside the graph: everything else. First every kernel map the network built in its eager first
  call (neighbour queries, transposed tables; one sort orders the rows of all their sides), then
  the network, which finds them cached (and builds its weight-gradient pair lists).

Padding voxels live in batch 511, which real voxels may not use, 8 apart along x (first stride at
x = 0 mod 8, coarser strides at 3 mod 8), so no padding voxel is a neighbour of any other voxel, at
its stride or across a down-sampling with a kernel of up to 3: their features start at zero and a
convolution leaves them at zero. Inference (`GraphedInference`, eval mode) cuts the output to the
real rows. Training (`GraphedTrainStep`) also needs BatchNorm's statistics to skip the padding: the
tensors carry a row mask per stride (`TensorCache.row_masks`) and `kernels.nn.BatchNorm` then
normalises over the real rows and zeroes the rest; labels of padding rows are `ignore_index`.
"""

from __future__ import annotations

import itertools
import math
from collections import OrderedDict
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from kernels.backend import get_backend
from kernels.coords import downsample_coords
from kernels.tensor import SparseTensor, Stride, TensorCache

if TYPE_CHECKING:  # Triton may be missing (CPU installs): imported where used
    from kernels.triton.kmap import MapPlan, PaddedLevels, SortedLevels

PAD_BATCH = 511  # the largest batch the Triton maps' keys hold; padding voxels live there
PAD_SPACING = 8
MAX_GRANULARITY = 8192  # padding voxels at x < 8 * 8192 stay inside the keys' range


def _check_granularity(granularity: int) -> None:
    if granularity > MAX_GRANULARITY:
        raise ValueError(f"granularity {granularity} > {MAX_GRANULARITY}: padding leaves the key range")


def padding_coords(count: int, first_stride: bool, device: torch.device) -> torch.Tensor:
    """`count` padding voxels, sorted, pairwise out of reach (see the module's docstring)."""
    pads = torch.zeros(count, 4, dtype=torch.int32, device=device)
    pads[:, 0] = PAD_BATCH
    offset = 0 if first_stride else 3
    pads[:, 1] = torch.arange(count, dtype=torch.int32, device=device) * PAD_SPACING + offset
    return pads


def stride_coords(coords: torch.Tensor, strides: list[Stride]) -> dict[Stride, torch.Tensor]:
    """The (unpadded) coordinates of every stride, each down-sampled from the finest that divides it."""
    # A backend may down-sample itself (Triton: sorted keys kept), as in kernels.functional.conv3d.
    downsample = getattr(get_backend(coords.device), "downsample_coords", downsample_coords)
    out = {strides[0]: coords}
    for stride in strides[1:]:
        divisors = (s for s in out if all(a % b == 0 for a, b in zip(stride, s, strict=True)))
        parent = max(divisors, key=math.prod)
        out[stride] = downsample(out[parent], tuple(a // b for a, b in zip(stride, parent, strict=True)))
    return out


@dataclass
class PaddedScan:
    """Static buffers of one bucket: features (and labels), coordinates per stride padded to `caps`.

    pads: padding coordinates per stride (scans without keys only).
    keys: sorted int64 keys of every stride, for the Triton maps (`with_keys`); input_order: the row
    of each sorted key of the first stride (its rows are not in key order).
    masks: per stride, (row mask [cap, 1], real row count) for BatchNorm in training.
    levels: with keys, the flat buffers behind coords, keys and masks, that one launch fills.
    """

    feats: torch.Tensor
    coords: dict[Stride, torch.Tensor]
    pads: dict[Stride, torch.Tensor]
    keys: dict[Stride, torch.Tensor] = field(default_factory=dict)
    input_order: torch.Tensor | None = None
    masks: dict[Stride, tuple[torch.Tensor, torch.Tensor]] = field(default_factory=dict)
    labels: torch.Tensor | None = None
    levels: PaddedLevels | None = None

    @classmethod
    def allocate(
        cls, feats: torch.Tensor, sizes: dict[Stride, int], granularity: int, *,
        with_keys: bool, with_masks: bool, labels: torch.Tensor | None = None,
    ) -> PaddedScan:
        """Buffers for voxel counts `sizes` (per stride, the first being the input's)."""
        _check_granularity(granularity)
        device = feats.device
        first = next(iter(sizes))
        caps = {stride: bucket(n, granularity) for stride, n in sizes.items()}
        starts = dict(zip(caps, itertools.accumulate(caps.values(), initial=0), strict=False))
        total = sum(caps.values())
        coords = torch.empty(total, 4, dtype=torch.int32, device=device)
        scan = cls(
            torch.empty(caps[first], feats.shape[1], dtype=feats.dtype, device=device),
            {s: coords[starts[s]: starts[s] + cap] for s, cap in caps.items()},
            # `load` copies padding from these; keyed scans (`load_levels`) write it in the kernel
            {} if with_keys else {s: padding_coords(granularity, s == first, device) for s in caps},
        )
        if labels is not None:
            scan.labels = torch.empty(caps[first], dtype=labels.dtype, device=device)
        # count[l, 0]: each level's real rows, 0-dim float64 (exact, and it does not promote the
        # features), 16 bytes apart (aligned, as Triton specialises pointers on that).
        mask = torch.empty(total, 1, device=device) if with_masks else None
        count = torch.empty(len(caps), 2, dtype=torch.float64, device=device) if with_masks else None
        keys = torch.empty(total, dtype=torch.int64, device=device) if with_keys else None
        for level, (stride, cap) in enumerate(caps.items()):
            scan.coords[stride]._weak3d_range_ok = True  # type: ignore[attr-defined]
            rows = slice(starts[stride], starts[stride] + cap)
            if mask is not None and count is not None:
                scan.masks[stride] = (mask[rows], count[level, 0])
            if keys is not None:
                # Padded keys stay sorted: the padding holds the largest batch, in x order.
                scan.keys[stride] = keys[rows]
                order = None
                if stride == first:
                    scan.input_order = order = torch.empty(cap, dtype=torch.int32, device=device)
                scan.coords[stride]._weak3d_sorted_keys = (scan.keys[stride], order)  # type: ignore[attr-defined]
        if keys is not None and scan.input_order is not None:
            from kernels.triton.kmap import PaddedLevels

            table = torch.tensor([[starts[s], cap] for s, cap in caps.items()], dtype=torch.int64,
                                 device=device)
            scan.levels = PaddedLevels(table, coords, keys, scan.input_order, scan.feats, scan.labels, mask,
                                       count, PAD_BATCH, PAD_SPACING)
        return scan

    def load_levels(
        self, feats: torch.Tensor, coords: torch.Tensor, levels: SortedLevels,
        labels: torch.Tensor | None = None, ignore_index: int = -100,
    ) -> None:
        """Copy one scan in from its sorted levels (Triton maps, `with_keys`; level i = stride i):
        one launch writes every stride's real rows, padding, sorted keys and row mask, and the
        features and labels (no host sync)."""
        if self.levels is None:
            raise ValueError("PaddedScan.load_levels: the scan was allocated without keys (use load)")
        levels.fill_all(self.levels, coords, feats, labels, ignore_index)

    def _load_rows(self, feats: torch.Tensor, labels: torch.Tensor | None, ignore_index: int) -> None:
        n = feats.shape[0]
        self.feats[:n].copy_(feats)
        self.feats[n:].zero_()
        if self.labels is not None and labels is not None:
            self.labels[:n].copy_(labels)
            self.labels[n:].fill_(ignore_index)

    def load(
        self, feats: torch.Tensor, coords: dict[Stride, torch.Tensor], labels: torch.Tensor | None = None,
        ignore_index: int = -100,
    ) -> None:
        """Copy one scan in, given its coordinates per stride: real rows first, padding after (no
        host sync). For scans without keys (the reference backend); keyed scans use `load_levels`."""
        if self.keys:
            raise ValueError("PaddedScan.load: a scan allocated with_keys is loaded by load_levels")
        self._load_rows(feats, labels, ignore_index)
        for stride, real in coords.items():
            n, cap = real.shape[0], self.coords[stride].shape[0]
            self.coords[stride][:n].copy_(real)
            self.coords[stride][n:].copy_(self.pads[stride][: cap - n])
            if stride in self.masks:
                mask, count = self.masks[stride]
                mask[:n].fill_(1.0)
                mask[n:].zero_()
                count.fill_(n)

    def tensor(self) -> SparseTensor:
        """The padded input, on a fresh cache (so that the maps are built anew, in the graph)."""
        first = next(iter(self.coords))
        caches = TensorCache(coords=dict(self.coords), row_masks=dict(self.masks))
        return SparseTensor(self.feats, self.coords[first], first, caches)


def bucket(n: int, granularity: int) -> int:
    return -(-n // granularity) * granularity


_Entry = tuple[torch.cuda.CUDAGraph, PaddedScan, torch.Tensor]  # a graph, its buffers, its output


class _Graphed:
    """What both graphed runners share: strides learnt eagerly, buckets, graphs kept LRU."""

    def __init__(self, model: nn.Module, granularity: int, max_graphs: int) -> None:
        _check_granularity(granularity)
        self.model = model
        self.granularity = granularity
        self.max_graphs = max_graphs
        self.strides: list[Stride] | None = None
        self.plan: MapPlan = []  # the kernel maps the network builds (built together in the graph)
        self.graphs: OrderedDict[tuple[object, ...], _Entry] = OrderedDict()
        self.captures = 0

    def _graphable(self, x: SparseTensor) -> bool:
        return (x.feats.device.type == "cuda" and get_backend(x.feats.device).name == "triton"
                and x.stride == (1, 1, 1) and x.coords.shape[0] > 0)

    def _learn(self, x: SparseTensor) -> None:
        """After an eager call: the strides the network visited and the maps it built."""
        from kernels.triton.kmap import map_plan

        self.strides = sorted(x._caches.coords, key=math.prod)
        self.plan = map_plan(x._caches.kmaps)

    def _input(self, scan: PaddedScan) -> SparseTensor:
        """The padded input, with every planned kernel map built (sorted together: fewer launches
        than map by map, as the layers would)."""
        from kernels.triton.kmap import build_planned_maps

        x = scan.tensor()
        build_planned_maps(x._caches, self.plan)
        return x

    def _levels(self, coords: torch.Tensor) -> tuple[dict[Stride, int], SortedLevels] | None:
        """Voxel counts of every stride and their sorted keys (None: some stride is empty, run eagerly)."""
        from kernels.triton.kmap import sort_levels

        assert self.strides is not None and self.strides[0] == (1, 1, 1)
        levels = sort_levels(coords, self.strides, batch_limit=PAD_BATCH)  # one host sync
        if levels.counts[0] != coords.shape[0]:
            raise ValueError(f"kernels.graphs: the input has {coords.shape[0] - levels.counts[0]} duplicate "
                             "voxel coordinates (each voxel must appear once)")
        sizes = dict(zip(self.strides, levels.counts, strict=True))
        return (sizes, levels) if all(sizes.values()) else None

    def _key(self, x: SparseTensor, sizes: dict[Stride, int]) -> tuple[object, ...]:
        caps = tuple(bucket(n, self.granularity) for n in sizes.values())
        return caps, x.feats.dtype, x.feats.shape[1], x.feats.device

    def _remember(self, key: tuple[object, ...], entry: _Entry) -> None:
        self.graphs[key] = entry
        self.captures += 1
        while len(self.graphs) > self.max_graphs:
            self.graphs.popitem(last=False)

    @staticmethod
    def _capture(run: Callable[[], torch.Tensor], device: torch.device,
                 between: Callable[[], None] = lambda: None) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        """Warm `run` up on a side stream (lazy initialisations), call `between`, then capture it."""
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):
            run()
        torch.cuda.current_stream(device).wait_stream(side)
        between()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            output = run()
        return graph, output


def _per_voxel(output: object, x: SparseTensor) -> torch.Tensor:
    """The model's output, checked to be a tensor with one row per input voxel (padding is cut
    off by rows)."""
    if not isinstance(output, torch.Tensor) or output.shape[0] != x.feats.shape[0]:
        raise TypeError("kernels.graphs: the model must return a tensor with one row per input voxel, "
                        f"got {type(output).__name__} {tuple(getattr(output, 'shape', ()))}")
    return output


class GraphedInference(_Graphed):
    """`GraphedInference(model)(sparse_tensor) -> model(sparse_tensor)` for an eval-mode model on CUDA.

    The model must return a tensor with one row per input voxel. The first call runs eagerly and
    records which strides the network visits; later calls capture one graph per bucket of voxel
    counts (up to `max_graphs`, least recently used dropped; `captures` counts them). Falls back
    to the eager model off the Triton backend, for a stride other than 1 or an empty stride.
    Graphs read the parameters where they were at capture: weights loaded in place
    (`load_state_dict`) are seen, a model moved or cast (`.half()`, `.to()`) needs a new runner.
    """

    def __init__(self, model: nn.Module, granularity: int = 1024, max_graphs: int = 8) -> None:
        super().__init__(model, granularity, max_graphs)

    @torch.no_grad()
    def __call__(self, x: SparseTensor) -> torch.Tensor:
        if self.model.training:
            raise RuntimeError("GraphedInference needs the model in eval mode (model.eval())")
        if not self._graphable(x):
            return self.model(x)
        if self.strides is None:  # learn the strides (and compile every kernel) eagerly
            output = _per_voxel(self.model(x), x)
            self._learn(x)
            return output
        found = self._levels(x.coords)
        if found is None:
            return self.model(x)
        sizes, levels = found
        key = self._key(x, sizes)
        entry = self.graphs.get(key)
        if entry is None:
            scan = PaddedScan.allocate(x.feats, sizes, self.granularity, with_keys=True, with_masks=False)
            scan.load_levels(x.feats, x.coords, levels)
            graph, output = self._capture(lambda: self.model(self._input(scan)), x.feats.device)
            entry = (graph, scan, output)
            self._remember(key, entry)
        else:
            self.graphs.move_to_end(key)
            entry[1].load_levels(x.feats, x.coords, levels)
        entry[0].replay()
        return entry[2][: x.feats.shape[0]].clone()


class GraphedTrainStep(_Graphed):
    """One training step (forward, loss, backward, optimizer step) replayed from a CUDA graph.

    `step(sparse_tensor, labels) -> loss` does what this does eagerly:

        with torch.autocast("cuda", dtype=autocast_dtype): loss = loss_fn(model(x), labels)
        optimizer.zero_grad(); loss.backward(); optimizer.step()

    `loss_fn` must skip rows labelled `ignore_index` (nn.CrossEntropyLoss does): padding rows carry
    it. The optimizer must run without host syncs (SGD; Adam with capturable=True), the learning
    rate is frozen into each graph, and there is no GradScaler (its inf check syncs). Capturing a
    bucket takes one warm-up step whose effect on weights, BatchNorm statistics and optimizer state
    is undone before the step is captured (state created by it is zeroed: right for SGD momentum
    without dampening and for Adam). The first call runs eagerly and learns the strides.
    """

    def __init__(
        self, model: nn.Module, loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        optimizer: torch.optim.Optimizer, autocast_dtype: torch.dtype | None = None, granularity: int = 1024,
        max_graphs: int = 2, ignore_index: int = -100,
    ) -> None:
        super().__init__(model, granularity, max_graphs)
        self.loss_fn = loss_fn
        self.optimizer = optimizer
        self.autocast_dtype = autocast_dtype
        self.ignore_index = ignore_index

    def _autocast(self) -> torch.autocast | nullcontext[None]:
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast("cuda", dtype=self.autocast_dtype, cache_enabled=False)

    def _eager(self, x: SparseTensor, labels: torch.Tensor) -> torch.Tensor:
        with self._autocast():
            loss = self.loss_fn(_per_voxel(self.model(x), x), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    def __call__(self, x: SparseTensor, labels: torch.Tensor) -> torch.Tensor:
        if not self.model.training:
            raise RuntimeError("GraphedTrainStep needs the model in training mode (model.train())")
        if not self._graphable(x):
            return self._eager(x, labels)
        if self.strides is None:
            loss = self._eager(x, labels)
            self._learn(x)
            return loss
        found = self._levels(x.coords)
        if found is None:
            return self._eager(x, labels)
        sizes, levels = found
        key = (*self._key(x, sizes), labels.dtype)
        entry = self.graphs.get(key)
        if entry is None:
            scan = PaddedScan.allocate(x.feats, sizes, self.granularity, with_keys=True, with_masks=True,
                                       labels=labels)
            scan.load_levels(x.feats, x.coords, levels, labels, self.ignore_index)

            def step() -> torch.Tensor:
                with self._autocast():
                    loss = self.loss_fn(self.model(self._input(scan)), scan.labels)  # type: ignore[arg-type]
                loss.backward()
                self.optimizer.step()
                return loss.detach()

            saved = _TrainingState(self.model, self.optimizer)
            self.optimizer.zero_grad(set_to_none=True)

            def undo_warm_up() -> None:
                saved.restore()
                self.optimizer.zero_grad(set_to_none=True)

            graph, loss = self._capture(step, x.feats.device, between=undo_warm_up)
            entry = (graph, scan, loss)
            self._remember(key, entry)
        else:
            self.graphs.move_to_end(key)
            entry[1].load_levels(x.feats, x.coords, levels, labels, self.ignore_index)
        entry[0].replay()
        return entry[2].clone()


class _TrainingState:
    """Copies of parameters, buffers and optimizer state, to undo a warm-up step."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        self.tensors = [(t, t.detach().clone()) for t in [*model.parameters(), *model.buffers()]]
        self.optimizer = optimizer
        self.state = {id(p): {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in s.items()}
                      for p, s in optimizer.state.items()}

    @torch.no_grad()
    def restore(self) -> None:
        for tensor, copy in self.tensors:
            tensor.copy_(copy)
        for param, state in self.optimizer.state.items():
            before = self.state.get(id(param), {})
            for name, value in state.items():
                if isinstance(value, torch.Tensor):
                    if name in before:
                        value.copy_(before[name])
                    else:
                        value.zero_()
