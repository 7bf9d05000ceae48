"""weak3d's Triton sparse convolution against spconv 2.3.8 on identical inputs and weights (GPU).

    PYTHONPATH=<spconv site> python bench/spconv_compare.py [--scan PATH] [--out JSON] [--quick]

Inputs: the real 34,688-point nuScenes sweep (`--scan`, a KITTI/nuScenes `.bin` of float32 rows
of 5 values: x, y, z, intensity, ring) and a >= 120k-point "64-beam-like" scan synthesised from it:
4 copies, each rotated by a multiple of 90 degrees about z and pushed radially by 3 % per copy, so
that their rings interleave (138,752 points). Each is voxelised at 5 cm and 10 cm; 8 distinct
scans come from rotating the points about z by 8 angles before voxelising (different voxel sets).

Checks first: ours and spconv's outputs against a float64 reference (our PyTorch backend) on the
same inputs and weights, as relative errors ||x - ref|| / ||ref||.
Then times (fp16): per layer (submanifold k=3 at C = 32, 64, 128, 256; down k=2 s=2 and
transposed up at C = 64; forward, input gradient, weight gradient, maps built beforehand), and
the whole MinkUNet (cr 1.0, weak3d.models.MinkUNet, and the same network in spconv with the same
weights): inference at batch 1 with maps built (a new scan every call), and a training step at
batch 2 (autocast fp16, forward + cross-entropy + backward + SGD step; every candidate takes
kernels.functional.cross_entropy, which on CUDA is our Triton loss); ours eager, ours through
CUDA graphs and spconv take turns call by call (host-bound times drift with the host's speed).
Medians of CUDA-event or `triton.testing.do_bench` times after warm-up, rotating over the 8 scans;
peak memory; floors
from the FLOPs and bytes of the convolutions (H200: 788 TFLOP/s fp16 dense, 4.3 TB/s, as measured
on these machines, see the device notes).

spconv weights: ours `[K, Cin, Cout]` in torchsparse offset order; spconv's `[Cout, k, k, k, Cin]`
with indices given as (b, x, y, z): k=3 (x fastest in ours) permute (4, 2, 1, 0, 3) of the
`[3, 3, 3, Cin, Cout]` view; k=2 (z fastest) permute (4, 0, 1, 2, 3). Checked by the error test.
"""

from __future__ import annotations

import argparse
import copy
import glob
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import kernels  # noqa: E402
from kernels.backend import use_backend  # noqa: E402
from kernels.functional import conv3d, cross_entropy  # noqa: E402
from kernels.graphs import GraphedInference, GraphedTrainStep  # noqa: E402
from weak3d.models import MinkUNet  # noqa: E402

PEAK_FLOPS = 788e12  # fp16/bf16 dense, measured on an H200 here (KINDS.md)
PEAK_BYTES = 4.3e12  # device copy bandwidth, read + write, measured on an H200 here
N_SCANS = 8

try:
    import spconv.pytorch as spconv  # type: ignore[import-not-found]

    SPCONV_ERROR = ""
except Exception as error:  # noqa: BLE001 - recorded in the results
    spconv = None
    SPCONV_ERROR = repr(error)


# ---------------------------------------------------------------- inputs
def load_points(path: str) -> np.ndarray:
    raw = np.fromfile(path, dtype=np.float32)
    columns = 5 if raw.size % 5 == 0 and "pcd" in path else 4
    return raw.reshape(-1, columns)[:, :4].copy()


def synthesise_dense(points: np.ndarray, copies: int = 4) -> np.ndarray:
    """>= 120k points: copies rotated by 90 degrees each and pushed out 3 % radially (more rings)."""
    out = []
    for j in range(copies):
        angle = j * math.pi / 2
        c, s = math.cos(angle), math.sin(angle)
        p = points.copy()
        x, y = p[:, 0] * (1 + 0.03 * j), p[:, 1] * (1 + 0.03 * j)
        p[:, 0], p[:, 1] = c * x - s * y, s * x + c * y
        out.append(p)
    return np.concatenate(out)


def voxelise(
    points: np.ndarray, voxel: float, angle: float, batch: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(coords int32 [N, 4] = (batch, x, y, z) >= 0, feats fp32 [N, 4]) of the rotated scan on the GPU."""
    p = torch.from_numpy(points).cuda()
    c, s = math.cos(angle), math.sin(angle)
    xyz = torch.stack([c * p[:, 0] - s * p[:, 1], s * p[:, 0] + c * p[:, 1], p[:, 2]], dim=1)
    grid = torch.floor(xyz / voxel).to(torch.int64)
    grid -= grid.min(dim=0).values - 8  # non-negative for spconv, 8 voxels of margin
    key = (grid[:, 0] << 40) | (grid[:, 1] << 20) | grid[:, 2]
    unique, inverse = torch.unique(key, return_inverse=True)
    first = torch.full((unique.shape[0],), p.shape[0], dtype=torch.int64, device="cuda")
    first.scatter_reduce_(0, inverse, torch.arange(p.shape[0], device="cuda"), "amin")
    coords = torch.cat([torch.full((unique.shape[0], 1), batch, device="cuda", dtype=torch.int64),
                        grid[first]], dim=1).to(torch.int32)
    feats = torch.cat([xyz[first], p[first, 3:4]], dim=1).contiguous()
    return coords, feats


def spatial_shape(coords: torch.Tensor) -> list[int]:
    high = coords[:, 1:].max(dim=0).values + 1
    return [int(math.ceil(int(h) / 32) * 32) for h in high]  # divisible down to stride 16


# ---------------------------------------------------------------- spconv network
def spconv_weight(kernel: torch.Tensor, size: int) -> torch.Tensor:
    cin, cout = kernel.shape[1], kernel.shape[2]
    view = kernel.detach().reshape(size, size, size, cin, cout)
    order = (4, 2, 1, 0, 3) if size % 2 == 1 else (4, 0, 1, 2, 3)
    return view.permute(*order).contiguous()


class SpconvMinkUNet(nn.Module):
    """The same MinkUNet in spconv, with the weights of a weak3d MinkUNet copied in."""

    def __init__(self, ours: MinkUNet) -> None:
        super().__init__()
        self.ours_layout: list[tuple[str, Any]] = []
        self.convs = nn.ModuleDict()
        self.bns = nn.ModuleDict()
        self.shortcuts = nn.ParameterDict()
        self.classifier = copy.deepcopy(ours.classifier)
        self._ours = [ours]
        for name, module in ours.named_modules():
            if isinstance(module, kernels.nn.Conv3d):
                key = name.replace(".", "_")
                size, stride = module.kernel_size[0], module.stride[0]
                if size == 1:  # 1x1 shortcut: a plain matmul on the features, as in ours
                    self.shortcuts[key] = nn.Parameter(module.kernel.detach().clone())
                    continue
                cin, cout = module.in_channels, module.out_channels
                if module.transposed:
                    conv = spconv.SparseInverseConv3d(cin, cout, size, indice_key=None, bias=False)
                elif stride == 1:
                    conv = spconv.SubMConv3d(cin, cout, size, bias=False, indice_key=None)
                else:
                    conv = spconv.SparseConv3d(cin, cout, size, stride=stride, bias=False, indice_key=None)
                conv.weight.data.copy_(spconv_weight(module.kernel, size))
                self.convs[key] = conv
            elif isinstance(module, kernels.nn.BatchNorm):
                bn = nn.BatchNorm1d(module.num_features)
                bn.load_state_dict(module.state_dict())
                self.bns[name.replace(".", "_")] = bn
        self._set_keys()

    def _set_keys(self) -> None:
        # spconv shares index pairs through indice_key: one per submanifold stride and per down stage.
        for key, conv in self.convs.items():
            if key.startswith("stem"):
                conv.indice_key = "subm1"
            elif key.startswith("stage"):
                level = int(key[5])  # stage i: down from stride 2^(i-1), residuals at stride 2^i
                conv.indice_key = f"down{level}" if key == f"stage{level}_0_net_0" else f"subm{level + 1}"
            elif key.startswith("up"):
                level = 5 - int(key[2])  # up i undoes stage 5-i's down-sampling
                conv.indice_key = f"down{level}" if key == f"up{key[2]}_0_net_0" else f"subm{level}"

    def _conv(self, name: str, x: Any) -> Any:
        return self.convs[name.replace(".", "_")](x)

    def _bn(self, name: str, x: Any, relu: bool) -> Any:
        f = self.bns[name.replace(".", "_")](x.features)
        return x.replace_feature(torch.relu(f) if relu else f)

    def _residual(self, prefix: str, block: nn.Module, x: Any) -> Any:
        out = self._bn(f"{prefix}.net.1", self._conv(f"{prefix}.net.0", x), True)
        out = self._bn(f"{prefix}.net.4", self._conv(f"{prefix}.net.3", out), False)
        if isinstance(block.downsample, nn.Identity):
            shortcut = x.features
        else:
            w = self.shortcuts[f"{prefix}.downsample.0".replace(".", "_")]
            bn = self.bns[f"{prefix}.downsample.1".replace(".", "_")]
            shortcut = bn(x.features @ w.to(x.features.dtype))
        return out.replace_feature(torch.relu(out.features + shortcut))

    def forward(self, x: Any) -> torch.Tensor:
        ours = self._ours[0]
        x = self._bn("stem.1", self._conv("stem.0", x), True)
        x0 = self._bn("stem.4", self._conv("stem.3", x), True)
        skips = [x0]
        h = x0
        for i in range(1, 5):
            name = f"stage{i}"
            h = self._bn(f"{name}.0.net.1", self._conv(f"{name}.0.net.0", h), True)
            h = self._residual(f"{name}.1", getattr(ours, name)[1], h)
            h = self._residual(f"{name}.2", getattr(ours, name)[2], h)
            skips.append(h)
        for i in range(1, 5):
            name = f"up{i}"
            h = self._bn(f"{name}.0.net.1", self._conv(f"{name}.0.net.0", h), True)
            h = h.replace_feature(torch.cat([h.features, skips[4 - i].features], dim=1))
            h = self._residual(f"{name}.1.0", getattr(ours, name)[1][0], h)
            h = self._residual(f"{name}.1.1", getattr(ours, name)[1][1], h)
        return self.classifier(h.features)


SHAPE: list[int] = []  # spconv's spatial shape, fixed per input set (computed outside the timing)


def sp_tensor(coords: torch.Tensor, feats: torch.Tensor, batch: int) -> Any:
    return spconv.SparseConvTensor(feats, coords, SHAPE, batch)


def fresh(coords: torch.Tensor) -> torch.Tensor:
    """Forget the keys our backend cached on a coordinate tensor, so maps are built from scratch."""
    for name in ("_weak3d_sorted_keys", "_weak3d_range_ok"):
        coords.__dict__.pop(name, None)
    return coords


# ---------------------------------------------------------------- timing helpers
def event_time(fn: Callable[[int], Any], i: int) -> float:
    """Milliseconds of call `fn(i)` by CUDA events (host launch time included; the GPU idle before)."""
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    fn(i)
    end.record()
    end.synchronize()
    return start.elapsed_time(end)


def bench_calls(fn: Callable[[], Any]) -> float:
    from triton.testing import do_bench

    return float(do_bench(fn, warmup=25, rep=100, return_mode="median"))


def summary(times: list[float]) -> dict[str, float]:
    q = np.percentile(times, [10, 50, 90])
    return {"median_ms": float(q[1]), "p10_ms": float(q[0]), "p90_ms": float(q[2]), "n": len(times)}


def rel_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got.double() - ref.double()).norm() / ref.double().norm())


# ---------------------------------------------------------------- per layer
def layer_floor(pairs: int, n_in: int, n_out: int, cin: int, cout: int, volume: int) -> dict[str, float]:
    flops = 2.0 * pairs * cin * cout
    nbytes = 2.0 * (n_in * cin + n_out * cout + volume * cin * cout) + 4.0 * n_out * volume
    return {"flops": flops, "bytes": nbytes,
            "floor_us": 1e6 * max(flops / PEAK_FLOPS, nbytes / PEAK_BYTES)}


def run_layers(
    scans: list[tuple[torch.Tensor, torch.Tensor]], label: str, quick: bool
) -> list[dict[str, Any]]:
    results = []
    specs = [("subm", c, c) for c in (32, 64, 128, 256)] + [("down", 64, 64), ("up", 64, 64)]
    for op, cin, cout in specs:
        gen = torch.Generator(device="cuda").manual_seed(cin)
        size = 3 if op == "subm" else 2
        w_master = torch.randn(size**3, cin, cout, device="cuda", generator=gen) / math.sqrt(cin * size**3)
        w_down = torch.randn(8, cin, cin, device="cuda", generator=gen) / math.sqrt(cin * 8)
        # Prepare the 8 scans for both libraries: features, maps built (ours) / indices (spconv).
        ours_in, sp_in = [], []
        for coords, _ in scans:
            feats = torch.randn(coords.shape[0], cin, device="cuda", generator=gen).half()
            x = kernels.SparseTensor(feats, coords)
            if op == "up":
                x = conv3d(x, w_down.half(), 2, stride=2)
                x = x.replace_feats(x.feats.detach())
            ours_in.append(x)
            if spconv is not None:
                s = sp_tensor(coords, feats, 1)
                if op == "up":
                    down = spconv.SparseConv3d(cin, cin, 2, stride=2, bias=False, indice_key="d")
                    down = down.cuda().half()
                    down.weight.data.copy_(spconv_weight(w_down.half(), 2))
                    with torch.no_grad():
                        s = down(s)
                sp_in.append(s)
        w = w_master.half().requires_grad_()

        def ours_forward(
            x: kernels.SparseTensor, weight: torch.Tensor = w, op: str = op
        ) -> kernels.SparseTensor:
            if op == "subm":
                return conv3d(x, weight, 3)
            if op == "down":
                return conv3d(x, weight, 2, stride=2)
            return conv3d(x, weight, 2, stride=2, transposed=True)

        sp_layer = None
        if spconv is not None:
            if op == "subm":
                sp_layer = spconv.SubMConv3d(cin, cout, 3, bias=False, indice_key="s")
            elif op == "down":
                sp_layer = spconv.SparseConv3d(cin, cout, 2, stride=2, bias=False, indice_key="d")
            else:
                sp_layer = spconv.SparseInverseConv3d(cin, cout, 2, bias=False, indice_key="d")
            sp_layer = sp_layer.cuda().half()
            sp_layer.weight.data.copy_(spconv_weight(w.detach(), size))

        # Correctness on scan 0 against fp64 (our maps first: the reference reuses what it finds).
        x0 = ours_in[0]
        ours_forward(x0)
        with use_backend("reference"):
            ref = ours_forward(kernels.SparseTensor(x0.feats.double(), x0.coords, x0.stride, x0._caches),
                               w.detach().double())
        out = ours_forward(x0).feats
        check = {"ours_fwd_rel_err": rel_error(out, ref.feats)}
        if sp_layer is not None:
            with torch.no_grad():
                sp_out = sp_layer(sp_in[0])
            check["spconv_fwd_rel_err"] = rel_error(align(sp_out, ref.coords), ref.feats)
        # Maps ready for every scan (built outside the timing, as spconv's indice_dict).
        for x, s in zip(ours_in, sp_in or [None] * len(ours_in), strict=True):
            ours_forward(x)
            if s is not None and sp_layer is not None:
                with torch.no_grad():
                    sp_layer(s)
        stats = map_stats(ours_forward(ours_in[0]), op, x0)
        row: dict[str, Any] = {"scan": label, "op": op, "cin": cin, "cout": cout, **stats, **check}
        row["floor"] = layer_floor(stats["pairs"], stats["n_in"], stats["n_out"], cin, cout, size**3)
        row["times_ms"] = {}
        for direction in ("forward", "input_grad", "weight_grad"):
            row["times_ms"][direction] = {
                "ours": time_layer(ours_in, ours_forward, w, direction, ours=True),
                "spconv": time_layer(sp_in, sp_layer, sp_layer.weight if sp_layer else None, direction,
                                     ours=False) if sp_layer is not None else None,
            }
        results.append(row)
        print_layer(row)
        if quick:
            break
    return results


def align(sp_out: Any, coords: torch.Tensor) -> torch.Tensor:
    """spconv's output rows put in the order of our coordinates (matched by coordinate keys)."""
    def key(c: torch.Tensor) -> torch.Tensor:
        c = c.to(torch.int64)
        return (c[:, 0] << 60) | (c[:, 1] << 40) | (c[:, 2] << 20) | c[:, 3]

    sp_keys, ours_keys = key(sp_out.indices), key(coords)
    order = torch.argsort(sp_keys)
    position = torch.searchsorted(sp_keys[order], ours_keys)
    if not torch.equal(sp_keys[order][position], ours_keys):
        raise RuntimeError("spconv's output voxels differ from ours")
    return sp_out.features[order[position]]


def map_stats(y: kernels.SparseTensor, op: str, x: kernels.SparseTensor) -> dict[str, int]:
    kmaps = list(y._caches.kmaps.values())
    kmap = kmaps[-1]
    table = kmap._state.forward.table
    pairs = int((table >= 0).sum())
    return {"pairs": pairs, "n_in": int(x.coords.shape[0]), "n_out": int(y.coords.shape[0])}


def time_layer(
    inputs: list[Any], layer: Any, weight: torch.Tensor | None, direction: str, ours: bool
) -> float:
    """Median ms over calls rotating through the scans (maps cached); backward: graph replayed."""
    calls = itertools.count()
    if direction == "forward":
        def forward() -> None:
            with torch.no_grad():
                layer(inputs[next(calls) % len(inputs)])
        return bench_calls(forward)
    assert weight is not None
    graphs = []
    weight.requires_grad_(direction == "weight_grad")
    for x in inputs:
        feats = (x.feats if ours else x.features).detach().requires_grad_(direction == "input_grad")
        y = layer(x.replace_feats(feats) if ours else x.replace_feature(feats))
        out = y.feats if ours else y.features
        graphs.append((out, torch.randn_like(out), feats))
    weight.requires_grad_(True)

    def backward() -> None:
        out, grad, feats = graphs[next(calls) % len(graphs)]
        out.backward(grad, retain_graph=True)
        feats.grad = None
        weight.grad = None

    return bench_calls(backward)


def print_layer(row: dict[str, Any]) -> None:
    parts = [f"{row['scan']:<18} {row['op']:<4} {row['cin']:>3}->{row['cout']:<3} pairs {row['pairs']:>8}"]
    for direction, t in row["times_ms"].items():
        sp = t["spconv"]
        ratio = f"{t['ours'] / sp:5.2f}x" if sp else "  n/a"
        parts.append(f"{direction[:5]} {t['ours'] * 1e3:7.1f}us/{(sp or 0) * 1e3:7.1f}us {ratio}")
    parts.append(f"floor {row['floor']['floor_us']:.1f}us")
    sp_err = row.get("spconv_fwd_rel_err", float("nan"))
    parts.append(f"err ours {row['ours_fwd_rel_err']:.1e} sp {sp_err:.1e}")
    print(" | ".join(parts), flush=True)


# ---------------------------------------------------------------- whole network
def network_floor(model: MinkUNet, coords: torch.Tensor, feats: torch.Tensor) -> dict[str, float]:
    """FLOPs and bytes of the convolutions and linear layers of one forward pass (fp16 storage)."""
    from kernels.triton.backend import TritonBackend

    totals = {"flops": 0.0, "bytes": 0.0}
    original = TritonBackend.conv_epilogue  # every convolution of the backend goes through it

    def counting(self: TritonBackend, f: torch.Tensor, weight: torch.Tensor, kmap: Any, epilogue: Any
                 ) -> torch.Tensor:
        table = kmap.output_side().table
        pairs = int((table >= 0).sum())
        cin, cout = weight.shape[1], weight.shape[2]
        totals["flops"] += 2.0 * pairs * cin * cout
        totals["bytes"] += 2.0 * (kmap.n_in * cin + kmap.n_out * cout + weight.shape[0] * cin * cout)
        totals["bytes"] += 4.0 * table.numel()
        return original(self, f, weight, kmap, epilogue)

    TritonBackend.conv_epilogue = counting  # type: ignore[method-assign]
    try:
        with torch.no_grad():
            model(kernels.SparseTensor(feats, coords))
    finally:
        TritonBackend.conv_epilogue = original  # type: ignore[method-assign]
    if totals["flops"] == 0:
        raise RuntimeError("network_floor: no convolution went through TritonBackend.conv_epilogue")
    totals["floor_us"] = 1e6 * max(totals["flops"] / PEAK_FLOPS, totals["bytes"] / PEAK_BYTES)
    return totals


def run_network(
    scans: list[tuple[torch.Tensor, torch.Tensor]], label: str, quick: bool
) -> dict[str, Any]:
    torch.manual_seed(0)
    model = MinkUNet(num_classes=17, cr=1.0).cuda()
    for m in model.modules():  # non-trivial BN statistics so that eval mode is a real check
        if isinstance(m, nn.BatchNorm1d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    sp_model = SpconvMinkUNet(model).cuda() if spconv is not None else None
    result: dict[str, Any] = {"scan": label, "voxels": [int(c.shape[0]) for c, _ in scans]}
    coords0, feats0 = scans[0]
    result["floor_inference"] = network_floor(model.eval(), coords0, feats0.half().float())

    # Agreement: fp16 outputs against the fp64 reference, eval mode.
    model.eval()
    with torch.no_grad(), use_backend("reference"):
        ref = model.double()(kernels.SparseTensor(feats0.half().double(), coords0))
    model.float().half()
    with torch.no_grad():
        ours = model(kernels.SparseTensor(feats0.half(), fresh(coords0)))
    result["ours_rel_err"] = rel_error(ours, ref)
    if sp_model is not None:
        sp_model.eval().half()
        with torch.no_grad():
            sp_out = sp_model(sp_tensor(coords0, feats0.half(), 1))
        result["spconv_rel_err"] = rel_error(sp_out, ref)

    def infer_ours(i: int) -> None:
        coords, feats = scans[i % len(scans)]
        with torch.no_grad():
            model(kernels.SparseTensor(feats.half(), fresh(coords)))

    def infer_sp(i: int) -> None:
        coords, feats = scans[i % len(scans)]
        with torch.no_grad():
            sp_model(sp_tensor(coords, feats.half(), 1))

    iters, warmup = (8, 3) if quick else (40, 10)
    # The same inference through CUDA graphs (kernels.graphs): maps still built for every scan,
    # inside the graph; one graph per bucket of voxel counts, captured during the warm-up.
    graphed = GraphedInference(model, granularity=1024)
    with torch.no_grad():
        graphed(kernels.SparseTensor(feats0.half(), fresh(coords0)))  # eager: learns the strides
        graphed_out = graphed(kernels.SparseTensor(feats0.half(), fresh(coords0)))
    result["graphed_rel_err"] = rel_error(graphed_out, ref)

    def infer_graphed(i: int) -> None:
        coords, feats = scans[i % len(scans)]
        graphed(kernels.SparseTensor(feats.half(), fresh(coords)))

    timed = measure({"ours": infer_ours, "graphed": infer_graphed, "spconv": infer_sp if sp_model else None},
                    iters, warmup, len(scans))
    result["inference"] = {"ours": timed["ours"], "spconv": timed["spconv"]}
    result["inference_graphed"] = timed["graphed"]
    result["graph_captures"] = graphed.captures

    # Training step at batch 2: scans i and i+1 (second one as batch 1), autocast fp16.
    model.float().train()
    batches = []
    for i in range(len(scans)):
        (c1, f1), (c2, f2) = scans[i], scans[(i + 1) % len(scans)]
        c2 = c2.clone()
        c2[:, 0] = 1
        coords, feats = torch.cat([c1, c2]), torch.cat([f1, f2])
        labels = torch.randint(0, 17, (coords.shape[0],), device="cuda")
        batches.append((coords, feats, labels))
    result["train_voxels"] = [int(b[0].shape[0]) for b in batches]
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)

    def train_ours(i: int) -> None:
        coords, feats, labels = batches[i % len(batches)]
        with torch.autocast("cuda", dtype=torch.float16):
            logits = model(kernels.SparseTensor(feats, fresh(coords)))
            loss = cross_entropy(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    train_sp = None
    if sp_model is not None:
        sp_model.float().train()
        sp_opt = torch.optim.SGD(sp_model.parameters(), lr=1e-4, momentum=0.9)

        def train_sp(i: int) -> None:
            coords, feats, labels = batches[i % len(batches)]
            with torch.autocast("cuda", dtype=torch.float16):
                logits = sp_model(sp_tensor(coords, feats, 2))
                loss = cross_entropy(logits, labels)
            sp_opt.zero_grad(set_to_none=True)
            loss.backward()
            sp_opt.step()

    # The same step through CUDA graphs (kernels.graphs.GraphedTrainStep; maps built in the graph).
    graphed_step = GraphedTrainStep(model, cross_entropy, opt, autocast_dtype=torch.float16,
                                    max_graphs=8)

    def train_graphed(i: int) -> None:
        coords, feats, labels = batches[i % len(batches)]
        graphed_step(kernels.SparseTensor(feats, fresh(coords)), labels)

    timed = measure({"ours": train_ours, "graphed": train_graphed, "spconv": train_sp}, iters, warmup,
                    len(batches))
    result["train_step"] = {"ours": timed["ours"], "spconv": timed["spconv"]}
    result["train_step_graphed"] = timed["graphed"]
    result["train_graph_captures"] = graphed_step.captures
    f = result["floor_inference"]
    result["floor_train_step_estimate"] = {
        "flops": 3 * 2 * f["flops"], "bytes": 3 * 2 * f["bytes"],
        "floor_us": 3 * 2 * f["floor_us"],
        "note": "3x the forward (fwd + dgrad + wgrad), 2 scans",
    }
    print_network(result)
    return result


def measure(candidates: dict[str, Callable[[int], None] | None], iters: int, warmup: int,
            inputs: int) -> dict[str, dict[str, float] | None]:
    """Median times and peak memory of each candidate (None: not available), interleaved: call i
    of every candidate runs back to back, so that the host's speed, which moves these host-bound
    timings by up to 2x within and between runs on the lent machines, is the same for all.
    Peak memory: each candidate alone over its warm-up (graph captures and their memory pools
    included) and one call per input, above what was allocated before."""
    live = {name: fn for name, fn in candidates.items() if fn is not None}
    peaks = {}
    for name, fn in live.items():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        for i in range(warmup + inputs):
            fn(i)
        torch.cuda.synchronize()
        peaks[name] = (torch.cuda.max_memory_allocated() - base) / 2**20
    times: dict[str, list[float]] = {name: [] for name in live}
    for i in range(iters):
        for name, fn in live.items():
            times[name].append(event_time(fn, i))
    return {name: {**summary(times[name]), "peak_mem_mib": peaks[name]} if name in live else None
            for name in candidates}


def print_network(r: dict[str, Any]) -> None:
    for mode in ("inference", "train_step"):
        o, s = r[mode]["ours"], r[mode]["spconv"]
        floor = r["floor_inference"]["floor_us"] if mode == "inference" else r["floor_train_step_estimate"][
            "floor_us"]
        ratio = f"{o['median_ms'] / s['median_ms']:.3f}x" if s else "n/a"
        sp_text = f"{s['median_ms']:.2f} ms ({s['peak_mem_mib']:.0f} MiB)" if s else "n/a"
        ours_text = f"{o['median_ms']:.2f} ms ({o['peak_mem_mib']:.0f} MiB)"
        print(f"{r['scan']:<18} MinkUNet {mode:<10} ours {ours_text} "
              f"| spconv {sp_text} | ratio {ratio} | floor {floor:.0f} us", flush=True)
    for mode, captures in (("inference", "graph_captures"), ("train_step", "train_graph_captures")):
        g, s = r[f"{mode}_graphed"], r[mode]["spconv"]
        ratio = f"{g['median_ms'] / s['median_ms']:.3f}x" if s else "n/a"
        print(f"{r['scan']:<18} MinkUNet {mode}, CUDA graphs ({r[captures]} captured) "
              f"ours {g['median_ms']:.2f} ms ({g['peak_mem_mib']:.0f} MiB) | ratio {ratio}", flush=True)
    print(f"{r['scan']:<18} rel. err vs fp64: ours {r['ours_rel_err']:.2e} "
          f"graphed {r['graphed_rel_err']:.2e} "
          f"spconv {r.get('spconv_rel_err', float('nan')):.2e}", flush=True)


# ---------------------------------------------------------------- main
def environment() -> dict[str, Any]:
    import triton

    env = {
        "gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
        "triton": triton.__version__, "python": platform.python_version(),
        "spconv": getattr(sys.modules.get("spconv"), "__version__", None) if spconv else None,
        "spconv_error": SPCONV_ERROR, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    try:
        import cumm  # type: ignore[import-not-found]

        env["cumm"] = getattr(cumm, "__version__", None)
    except Exception:  # noqa: BLE001
        env["cumm"] = None
    try:
        env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                       capture_output=True, text=True, timeout=20).stdout.strip()
    except Exception:  # noqa: BLE001
        env["driver"] = None
    return env


def default_scan() -> str:
    """The nuScenes sweep copied into .benchdata/ (or the shared real-data folder), else ""."""
    here = Path(__file__).resolve().parents[1]
    return (glob.glob(str(here / ".benchdata" / "*.pcd.bin"))
            + glob.glob("/work/shared/realdata/nuscenes/*LIDAR_TOP*.pcd.bin") + [""])[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = Path(__file__).resolve().parents[1]
    parser.add_argument("--scan", default=default_scan())
    parser.add_argument("--out", default=str(here / "bench" / "results" / "spconv_compare.json"))
    parser.add_argument("--quick", action="store_true", help="one layer, few iterations (smoke test)")
    parser.add_argument("--skip-layers", action="store_true")
    parser.add_argument("--skip-networks", action="store_true")
    parser.add_argument("--inputs", default="", help="comma-separated labels to run, e.g. nuscenes@5cm")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU")
    if not args.scan or not os.path.exists(args.scan):
        raise SystemExit(f"scan not found: {args.scan!r} (copy the nuScenes .pcd.bin into .benchdata/)")
    env = environment()
    print(json.dumps(env), flush=True)
    sweep = load_points(args.scan)
    dense = synthesise_dense(sweep)
    inputs = {"nuscenes": sweep, "dense64": dense}
    results: dict[str, Any] = {"environment": env, "scan_file": os.path.basename(args.scan),
                               "points": {k: int(v.shape[0]) for k, v in inputs.items()},
                               "layers": [], "networks": []}
    angles = [2 * math.pi * i / N_SCANS + 0.1 for i in range(N_SCANS)]
    for name, points in inputs.items():
        for voxel in (0.05, 0.10):
            label = f"{name}@{int(voxel * 100)}cm"
            if args.inputs and label not in args.inputs.split(","):
                continue
            scans = [voxelise(points, voxel, a) for a in angles]
            SHAPE[:] = spatial_shape(torch.cat([c for c, _ in scans]))
            # One failing part is recorded and the rest still runs (results are written as we go).
            if not args.skip_layers:
                try:
                    results["layers"] += run_layers(scans, label, args.quick)
                except Exception as error:  # noqa: BLE001
                    traceback.print_exc()
                    results.setdefault("errors", []).append(f"layers {label}: {error!r}")
            try:
                if not args.skip_networks:
                    results["networks"].append(run_network(scans, label, args.quick))
            except Exception as error:  # noqa: BLE001
                traceback.print_exc()
                results.setdefault("errors", []).append(f"network {label}: {error!r}")
            Path(args.out).parent.mkdir(parents=True, exist_ok=True)
            Path(args.out).write_text(json.dumps(results, indent=1))
    slow = [(r["scan"], r["op"], r["cin"], d) for r in results["layers"] for d, t in r["times_ms"].items()
            if t["spconv"] and t["ours"] > t["spconv"]]
    print("layers slower than spconv:", slow or "none")
    for r in results["networks"]:
        for mode in ("inference", "train_step"):
            if r[mode]["spconv"]:
                ratio = r[mode]["ours"]["median_ms"] / r[mode]["spconv"]["median_ms"]
                print(f"{r['scan']:<18} {mode:<10} ours/spconv = {ratio:.3f} (goal <= 0.3)")
                ratio = r[f"{mode}_graphed"]["median_ms"] / r[mode]["spconv"]["median_ms"]
                print(f"{r['scan']:<18} {mode:<10} with CUDA graphs: ours/spconv = {ratio:.3f} (goal <= 0.3)")
    ratios = [r[m]["ours"]["median_ms"] / r[m]["spconv"]["median_ms"] for r in results["networks"]
              for m in ("inference", "train_step") if r[m]["spconv"]]
    print("median of network ratios:", statistics.median(ratios) if ratios else "n/a")


if __name__ == "__main__":
    main()
