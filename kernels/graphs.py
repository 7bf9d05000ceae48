"""Sparse-network inference through CUDA graphs: one replay per scan instead of hundreds of launches.

At LiDAR sizes a layer's GPU work is tens of microseconds while its Python and launch overhead is
larger, so eager inference is bound by the host. A CUDA graph replays a whole forward pass in one
call but needs fixed sizes, and voxel counts change with every scan. `GraphedInference` pads the
voxels of each stride up to a bucket (a multiple of `granularity` rows), so one graph serves every
scan whose counts fall into the same buckets:

* eagerly, per scan: the coordinate range check and the down-sampled coordinates of every stride
  the network uses (`torch.unique`, whose size the host must know), padded with rows of batch 511,
  which no real voxel can reach (real batches must stay below 511; pads only meet pads);
* inside the graph: everything else, the kernel maps included (key sort, neighbour queries, mask
  sort, transposed tables), then the network itself.

Padding rows compute values that no real row reads, and the output is cut to the real rows. Eval
mode only: BatchNorm with running statistics works row by row, so pads cannot leak in (training
statistics would see them). Falls back to the eager model off the Triton backend, for inputs with
a stride other than 1, or for an empty stride.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
from torch import nn

from kernels.backend import get_backend
from kernels.tensor import SparseTensor, Stride, TensorCache

PAD_BATCH = 511  # the largest batch the Triton maps' keys hold; padding rows live there


@dataclass
class _Graph:
    """Static buffers of one bucket and the graph that reads them."""

    feats: torch.Tensor
    coords: dict[Stride, torch.Tensor]
    keys: dict[Stride, torch.Tensor]  # sorted keys of every stride but the first
    pads: dict[Stride, torch.Tensor]  # padding coordinate rows, per stride
    pad_keys: dict[Stride, torch.Tensor]  # and their keys, for the strides in `keys`
    graph: torch.cuda.CUDAGraph = field(default_factory=torch.cuda.CUDAGraph)
    output: torch.Tensor | None = None


class GraphedInference:
    """`GraphedInference(model)(sparse_tensor) -> model(sparse_tensor)`, for an eval-mode model on CUDA.

    The first call runs eagerly and records which strides the network visits; later calls capture
    one graph per bucket of voxel counts (kept up to `max_graphs`, least recently used dropped).
    `captures` counts the graphs captured so far.
    """

    def __init__(self, model: nn.Module, granularity: int = 1024, max_graphs: int = 8) -> None:
        self.model = model
        self.granularity = granularity
        self.max_graphs = max_graphs
        self.strides: list[Stride] | None = None
        self.graphs: OrderedDict[tuple[object, ...], _Graph] = OrderedDict()
        self.captures = 0

    @torch.no_grad()
    def __call__(self, x: SparseTensor) -> torch.Tensor:
        if self.model.training:
            raise RuntimeError("GraphedInference needs the model in eval mode (model.eval())")
        if (x.feats.device.type != "cuda" or get_backend(x.feats.device).name != "triton"
                or x.stride != (1, 1, 1)):
            return self.model(x)
        if self.strides is None:  # learn the strides (and compile every kernel) eagerly
            output = self.model(x)
            self.strides = sorted(x._caches.coords, key=math.prod)
            return output
        coords = self._coords(x.coords)
        if coords is None:
            return self.model(x)
        caps = tuple(self._cap(c.shape[0]) for c in coords.values())
        key = (caps, x.feats.dtype, x.feats.shape[1], x.feats.device)
        graph = self.graphs.get(key)
        if graph is None:
            graph = self._capture(x.feats, coords, caps)
            self.graphs[key] = graph
            while len(self.graphs) > self.max_graphs:
                self.graphs.popitem(last=False)
        else:
            self.graphs.move_to_end(key)
            self._load(graph, x.feats, coords)
            graph.graph.replay()
        assert graph.output is not None
        return graph.output[: x.feats.shape[0]].clone()

    def _cap(self, n: int) -> int:
        return -(-n // self.granularity) * self.granularity

    def _coords(self, coords: torch.Tensor) -> dict[Stride, torch.Tensor] | None:
        """Coordinates of every stride, computed eagerly (None: not graphable)."""
        from kernels.triton import kmap as gpu_kmap

        assert self.strides is not None
        if coords.shape[0] == 0:
            return None
        gpu_kmap.check_range(coords, batch_limit=PAD_BATCH)
        out: dict[Stride, torch.Tensor] = {self.strides[0]: coords}
        for stride in self.strides[1:]:
            parent = max((s for s in out if all(a % b == 0 for a, b in zip(stride, s, strict=True))),
                         key=math.prod)
            factor = tuple(a // b for a, b in zip(stride, parent, strict=True))
            out[stride] = gpu_kmap.downsample_coords(out[parent], factor)
            if out[stride].shape[0] == 0:
                return None
        return out

    def _load(self, graph: _Graph, feats: torch.Tensor, coords: dict[Stride, torch.Tensor]) -> None:
        """Copy one scan into the graph's static buffers, padding rows after the real ones."""
        n = feats.shape[0]
        graph.feats[:n].copy_(feats)
        graph.feats[n:].zero_()
        for stride, real in coords.items():
            n = real.shape[0]
            graph.coords[stride][:n].copy_(real)
            graph.coords[stride][n:].copy_(graph.pads[stride][n:])
            if stride in graph.keys:
                graph.keys[stride][:n].copy_(real._weak3d_sorted_keys[0])  # type: ignore[attr-defined]
                graph.keys[stride][n:].copy_(graph.pad_keys[stride][n:])

    def _capture(
        self, feats: torch.Tensor, coords: dict[Stride, torch.Tensor], caps: tuple[int, ...]
    ) -> _Graph:
        from kernels.triton import kmap as gpu_kmap

        device = feats.device
        static_coords, keys, pads, pad_keys = {}, {}, {}, {}
        for (stride, real), cap in zip(coords.items(), caps, strict=True):
            pad = torch.zeros(cap, 4, dtype=torch.int32, device=device)
            pad[:, 0] = PAD_BATCH
            pads[stride] = pad
            static_coords[stride] = torch.empty(cap, 4, dtype=torch.int32, device=device)
            static_coords[stride]._weak3d_range_ok = True  # type: ignore[attr-defined]
            if real is not coords[self.strides[0]]:  # type: ignore[index]
                keys[stride] = torch.empty(cap, dtype=torch.int64, device=device)
                pad_keys[stride] = gpu_kmap.pack_keys(pad)
        graph = _Graph(torch.empty(caps[0], feats.shape[1], dtype=feats.dtype, device=device),
                       static_coords, keys, pads, pad_keys)
        self._load(graph, feats, coords)
        first = self.strides[0]  # type: ignore[index]
        for stride, key in keys.items():  # padded keys stay sorted: pads hold the largest batch
            static_coords[stride]._weak3d_sorted_keys = (key, None)  # type: ignore[attr-defined]

        def forward() -> torch.Tensor:
            # A fresh cache, and the first stride's keys forgotten, so the maps are built in the graph.
            static_coords[first].__dict__.pop("_weak3d_sorted_keys", None)
            caches = TensorCache(coords=dict(static_coords))
            output = self.model(SparseTensor(graph.feats, static_coords[first], first, caches))
            if not isinstance(output, torch.Tensor):
                raise TypeError("GraphedInference: the model must return a tensor with one row per voxel")
            return output

        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up outside the capture (lazy initialisations)
            forward()
        torch.cuda.current_stream(device).wait_stream(side)
        with torch.cuda.graph(graph.graph):
            graph.output = forward()
        graph.graph.replay()
        self.captures += 1
        return graph
