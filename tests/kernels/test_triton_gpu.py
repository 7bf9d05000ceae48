"""Triton backend against the fp64 PyTorch reference on the GPU (skipped without CUDA + Triton).

Every op (submanifold k=3, down-sampling k=2 s=2, transposed up-sampling), dtype (fp32, tf32,
fp16, bf16) and direction (forward, input gradient, weight gradient) is compared with the
reference run in float64 on the same (rounded) inputs; outputs are written into memory poisoned
with NaN first, so a row the kernels forget to write fails the test.
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

import kernels
from kernels.backend import use_backend
from kernels.functional import conv3d

triton_backend = pytest.importorskip("kernels.triton.backend", reason="needs Triton")
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]

# Relative error ||got - ref|| / ||ref|| allowed per dtype (against fp64 on the same inputs).
# TF32 keeps 10 mantissa bits of each operand (inputs truncated by the tensor cores): up to ~3e-3
# on a 1-term (transposed) convolution, measured 1.5e-3 on an H200.
TOLERANCE = {"fp32": 1e-5, "tf32": 3e-3, "fp16": 1e-2, "bf16": 1e-2}
DTYPES = {"fp32": torch.float32, "tf32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def _random_coords(n: int, grid: int, seed: int, batch: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    raw = torch.cat([torch.randint(0, batch, (n, 1), generator=generator),
                     torch.randint(-grid, grid, (n, 3), generator=generator)], dim=1)
    coords = torch.unique(raw, dim=0)
    coords = coords[torch.randperm(coords.shape[0], generator=generator)]  # unsorted input rows
    return coords.to(torch.int32).cuda()


def _poison_allocator() -> None:
    """Fill freed blocks of the caching allocator with NaN so unwritten output rows show."""
    block = torch.empty(64 << 20, dtype=torch.float32, device="cuda")
    block.fill_(float("nan"))
    del block


def _run(op: str, backend: str, dtype: torch.dtype, coords: torch.Tensor, cin: int, cout: int,
         seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(output, input grad, weight grad, output coords) of `op` on rounded random data."""
    generator = torch.Generator().manual_seed(seed)
    size = 3 if op == "subm" else 2
    feats = torch.randn(coords.shape[0], cin, generator=generator).to(dtype).double()
    weight = torch.randn(size**3, cin, cout, generator=generator).div(size**1.5).to(dtype).double()
    down_weight = torch.randn(8, cin, cin, generator=generator).div(8**0.5).to(dtype).double()
    work = torch.float64 if backend == "reference" else dtype
    feats = feats.to(work).cuda().requires_grad_()
    weight = weight.to(work).cuda().requires_grad_()
    with use_backend(backend):
        x = kernels.SparseTensor(feats, coords)
        if op == "subm":
            y = conv3d(x, weight, 3)
        elif op == "down":
            y = conv3d(x, weight, 2, stride=2)
        else:  # up: back onto x's voxels through the down map
            coarse = conv3d(x, down_weight.to(work).cuda(), 2, stride=2)
            coarse = coarse.replace_feats(coarse.feats.detach().requires_grad_())
            feats = coarse.feats
            y = conv3d(coarse, weight, 2, stride=2, transposed=True)
        grad = torch.randn(y.feats.shape, generator=generator).to(dtype).to(work).cuda()
        y.feats.backward(grad)
    return y.feats.detach(), feats.grad, weight.grad, y.coords


def _relative_error(got: torch.Tensor, ref: torch.Tensor) -> float:
    return float((got.double() - ref).norm() / ref.norm())


@pytest.mark.parametrize("op", ["subm", "down", "up"])
@pytest.mark.parametrize("precision", ["fp32", "tf32", "fp16", "bf16"])
@pytest.mark.parametrize(("cin", "cout"), [(4, 32), (64, 96)])
def test_triton_matches_fp64_reference(op: str, precision: str, cin: int, cout: int,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", precision == "tf32")
    coords = _random_coords(6000, 14, seed=len(op) + cin)
    ref = _run(op, "reference", torch.float64, coords, cin, cout, seed=3)
    _poison_allocator()
    got = _run(op, "triton", DTYPES[precision], coords, cin, cout, seed=3)
    assert torch.equal(got[3], ref[3]), "output voxels differ from the reference"
    for name, g, r in zip(("forward", "input grad", "weight grad"), got[:3], ref[:3], strict=True):
        assert g.dtype == DTYPES[precision]
        assert torch.isfinite(g).all(), f"{name}: non-finite values (unwritten rows?)"
        error = _relative_error(g, r)
        assert error < TOLERANCE[precision], f"{op} {precision} {name}: relative error {error:.2e}"
    if precision == "tf32":  # TF32 must really be used: it is far less exact than fp32
        assert _relative_error(got[0], ref[0]) > 1e-6


def test_wide_layer_configs_match_fp64() -> None:
    """256 channels on enough rows that the default configs take 128 x 256 tiles (implicit GEMM,
    8 warps) and 128 x 256 weight-gradient tiles: forward and both gradients against fp64."""
    from kernels.triton import conv as triton_conv

    coords = _random_coords(30000, 30, seed=9)
    rows = coords.shape[0]
    assert triton_conv.gemm_config(256, 256, True, rows, 27)["BLOCK_N"] == 256
    assert triton_conv.weight_grad_config(256, 256, True, rows, 27)["BLOCK_O"] == 256
    ref = _run("subm", "reference", torch.float64, coords, 256, 256, seed=4)
    _poison_allocator()
    got = _run("subm", "triton", torch.float16, coords, 256, 256, seed=4)
    for name, g, r in zip(("forward", "input grad", "weight grad"), got[:3], ref[:3], strict=True):
        error = _relative_error(g, r)
        assert error < TOLERANCE["fp16"], f"{name}: relative error {error:.2e}"


@pytest.mark.parametrize(("op", "size", "stride"), [("subm", 3, 1), ("down", 2, 2), ("down", 3, 2)])
def test_gpu_kernel_map_has_the_reference_pairs(op: str, size: int, stride: int) -> None:
    from kernels.coords import downsample_coords
    from kernels.kmap import build_kernel_map
    from kernels.triton import kmap as gpu_kmap

    coords = _random_coords(5000, 20, seed=7)
    if stride == 1:
        out = coords
        assert gpu_kmap.downsample_coords(coords, (2, 2, 2)).equal(downsample_coords(coords, (2, 2, 2)))
        level_strides = [(2, 2, 2), (4, 4, 4), (1, 2, 4)]
        levels = gpu_kmap.sort_levels(coords, level_strides, batch_limit=511)
        for i, level_stride in enumerate(level_strides):
            assert levels.level(i).equal(downsample_coords(coords, level_stride))
    else:
        out = gpu_kmap.downsample_coords(coords, (stride,) * 3)
    ref = build_kernel_map(coords, out, (size,) * 3, (stride,) * 3)
    got = gpu_kmap.build_kernel_map(coords, out, (size,) * 3, (stride,) * 3)
    assert got.pair_counts == ref.pair_counts
    assert torch.equal(got.out_in_map(), ref.out_in_map())
    assert got.identity_offset == ref.identity_offset
    back = got.transposed()
    assert torch.equal(back.out_in_map(), ref.transposed().out_in_map())
    for side in (got.output_side(), got.input_side()):  # bitmasks: bit k set iff column k has a neighbour
        columns = torch.arange(side.sorted_table.shape[0], device="cuda")[:, None]
        present = (side.sorted_table >= 0).long() << columns
        assert torch.equal(side.sorted_mask.long() & 0xFFFFFFFF, present.sum(dim=0))
    rows, others, starts, rows_are_out = got.offset_lists()  # the weight gradient's pair lists
    assert rows_are_out and starts.tolist() == [0, *torch.tensor(ref.pair_counts).cumsum(0).tolist()]
    table = got.output_side().table.long()
    for k in range(table.shape[1]):
        count = int(starts[k + 1] - starts[k])
        expected = (table[:, k] >= 0).nonzero().flatten()  # output rows in order
        assert torch.equal(rows[k, :count].long(), expected)
        assert torch.equal(others[k, :count].long(), table[expected, k])


@pytest.mark.parametrize("kernel", ["loop", "pipelined", "preloaded"])
@pytest.mark.parametrize(("op", "cin", "cout"), [("subm", 32, 32), ("subm", 256, 96), ("down", 96, 128)])
@pytest.mark.parametrize(("block_m", "warps", "block_n"),
                         [(32, 4, 64), (64, 4, 64), (64, 4, 32), (128, 4, 64), (128, 8, 256), (256, 8, 128)])
def test_every_implicit_gemm_config_matches_fp64(kernel: str, op: str, cin: int, cout: int, block_m: int,
                                                 warps: int, block_n: int) -> None:
    """Both implicit-GEMM kernels (the tuned configs pick either; the pipelined one also with its
    table block read before the loop, PRELOAD), forward and input gradient
    (submanifold: the flipped table), several Cin chunks (32-channel steps with 32-wide output
    tiles, as 96-channel layers take them), against fp64 sums over the table; the
    forward also with an eval-mode BatchNorm and ReLU applied before the store, and with a
    residual sum between them."""
    from kernels.epilogue import NormEpilogue
    from kernels.triton import conv as triton_conv
    from kernels.triton import kmap as gpu_kmap

    coords = _random_coords(8000, 16, seed=cin)
    size, stride = (3, 1) if op == "subm" else (2, 2)
    out = coords if stride == 1 else gpu_kmap.downsample_coords(coords, (stride,) * 3)
    kmap = gpu_kmap.build_kernel_map(coords, out, (size,) * 3, (stride,) * 3)
    generator = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(kmap.n_in, cin, device="cuda", generator=generator).half()
    dy = torch.randn(kmap.n_out, cout, device="cuda", generator=generator).half()
    weight = (torch.randn(size**3, cin, cout, device="cuda", generator=generator) / cin**0.5).half()
    config = {"BLOCK_M": block_m, "BLOCK_N": block_n, "BLOCK_K": 32 if block_n == 32 else 64,
              "num_warps": warps, "STAGES": 0 if kernel == "loop" else 3,
              "PRELOAD": int(kernel == "preloaded")}
    table = kmap.output_side().table.long()
    ref_y = torch.zeros(kmap.n_out, cout, dtype=torch.float64, device="cuda")
    ref_dx = torch.zeros(kmap.n_in, cin, dtype=torch.float64, device="cuda")
    for k in range(size**3):
        present = table[:, k] >= 0
        ref_y[present] += x.double()[table[present, k]] @ weight[k].double()
        ref_dx.index_add_(0, table[present, k], dy.double()[present] @ weight[k].double().T)
    _poison_allocator()
    y = triton_conv.implicit_gemm(x, weight, kmap.output_side(), False, config)
    dx = triton_conv.implicit_gemm(dy, weight, kmap.input_side(), True, config)
    assert _relative_error(y, ref_y) < TOLERANCE["fp16"]
    assert _relative_error(dx, ref_dx) < TOLERANCE["fp16"]
    stats = [torch.randn(cout, device="cuda", generator=generator),
             torch.rand(cout, device="cuda", generator=generator) + 0.5,
             torch.rand(cout, device="cuda", generator=generator) + 0.5,
             torch.randn(cout, device="cuda", generator=generator)]
    epilogue = NormEpilogue(*stats, eps=1e-5, relu=True)
    mean, var, scale, shift = (t.double() for t in stats)
    ref_norm = torch.relu((ref_y - mean) / torch.sqrt(var + 1e-5) * scale + shift)
    normalised = triton_conv.implicit_gemm(x, weight, kmap.output_side(), False, config, epilogue=epilogue)
    assert _relative_error(normalised, ref_norm) < TOLERANCE["fp16"]
    shortcut = torch.randn(kmap.n_out, cout, device="cuda", generator=generator).half()
    ref_sum = torch.relu((ref_y - mean) / torch.sqrt(var + 1e-5) * scale + shift + shortcut.double())
    summed = triton_conv.implicit_gemm(x, weight, kmap.output_side(), False, config,
                                       epilogue=replace(epilogue, residual=shortcut))
    assert _relative_error(summed, ref_sum) < TOLERANCE["fp16"]


def test_deterministic_mode_is_bit_identical() -> None:
    from kernels.triton import set_deterministic

    coords = _random_coords(60000, 40, seed=11)  # large enough for split-K weight gradients
    set_deterministic(True)
    try:
        runs = [_run("subm", "triton", torch.float16, coords, 32, 32, seed=5) for _ in range(3)]
        runs += [_run("down", "triton", torch.float32, coords, 32, 32, seed=5) for _ in range(2)]
    finally:
        set_deterministic(None)
    for first, again in ((runs[0], runs[1]), (runs[0], runs[2]), (runs[3], runs[4])):
        for a, b in zip(first[:3], again[:3], strict=True):
            assert torch.equal(a, b)


def test_minkunet_trains_with_triton_by_default() -> None:
    """MinkUNet in fp32 on the default (Triton) backend: logits and gradients as close to fp64 as
    the fp32 reference's, and training steps lower the loss.

    The gradient comparison runs BatchNorm on running statistics: with batch statistics its
    backward amplifies fp32 rounding chaotically (stem gradient off fp64 by 2e-4 for the reference
    and 1.2e-3 for Triton on an H200, 4e-3 and 3e-6 in the Triton interpreter on another input),
    which compares luck, not kernels; the kernels' own accuracy is tested op by op above.
    """
    from weak3d.models import MinkUNet

    assert kernels.backend.get_backend(torch.device("cuda")).name == "triton"
    coords = _random_coords(8000, 30, seed=13)
    feats = torch.randn(coords.shape[0], 4, device="cuda", dtype=torch.float64)
    torch.manual_seed(0)
    model = MinkUNet(num_classes=5, cr=0.5).cuda()
    for m in model.modules():  # non-trivial running statistics
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    model.eval()
    results = {}
    runs = (("fp64", "reference", torch.float64), ("reference", "reference", torch.float32),
            ("triton", "triton", torch.float32))
    for name, backend, dtype in runs:
        model.to(dtype).zero_grad()
        with use_backend(backend):
            logits = model(kernels.SparseTensor(feats.to(dtype), coords))
        logits.square().mean().backward()
        results[name] = (logits.detach().double(), model.stem[0].kernel.grad.double())
    for i, what in enumerate(("logits", "stem weight grad")):
        exact = results["fp64"][i]
        ours = _relative_error(results["triton"][i], exact)
        reference = _relative_error(results["reference"][i], exact)
        assert ours < 3 * reference + 1e-6, f"{what}: triton {ours:.2e} vs fp32 reference {reference:.2e}"

    model.float().train()
    labels = torch.randint(0, 5, (coords.shape[0],), device="cuda")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.cross_entropy(model(kernels.SparseTensor(feats.float(), coords)), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0], losses


def test_graphed_inference_replays_the_eager_network() -> None:
    """GraphedInference: same logits as the eager model, one graph per bucket of voxel counts."""
    from kernels.graphs import GraphedInference
    from weak3d.models import MinkUNet

    torch.manual_seed(0)
    model = MinkUNet(num_classes=5, cr=0.5).cuda().eval().half()
    graphed = GraphedInference(model, granularity=4096)
    second = _random_coords(9000, 30, seed=21)
    shuffled = second[torch.randperm(second.shape[0], device="cuda")]  # same counts: the same bucket
    scans = [_random_coords(9000, 30, seed=20), second, shuffled, _random_coords(20000, 30, seed=22)]
    feats = [torch.randn(c.shape[0], 4, device="cuda").half() for c in scans]
    outputs = [graphed(kernels.SparseTensor(f, c)) for f, c in zip(feats, scans, strict=True)]
    assert graphed.captures == 2  # the first call runs eagerly; scan 2 replays the graph of scan 1
    for out, f, c in zip(outputs, feats, scans, strict=True):
        with torch.no_grad():
            eager = model(kernels.SparseTensor(f, c.clone()))
        assert out.shape == eager.shape
        torch.testing.assert_close(out, eager, rtol=2e-3, atol=2e-3)
    # A replay reads the new scan, not the one captured.
    again = graphed(kernels.SparseTensor(feats[2], scans[2]))
    torch.testing.assert_close(again, outputs[2], rtol=0, atol=0)


def test_conv_batch_norm_pairs_run_as_one_kernel_at_inference(monkeypatch: pytest.MonkeyPatch) -> None:
    """ConvSequential (MinkUNet's blocks) in eval mode without grads: every 3x3x3 / strided conv
    followed by a BatchNorm normalises in its epilogue, each residual block's last one also adds
    the shortcut there, and the logits match the unfused network."""
    from kernels import nn as spnn
    from kernels.triton import conv as triton_conv
    from weak3d.models import MinkUNet
    from weak3d.models.blocks import ResidualBlock

    torch.manual_seed(0)
    model = MinkUNet(num_classes=5, cr=0.5).cuda().eval().half()
    for module in model.modules():  # running statistics away from (0, 1), so a missed BN shows
        if isinstance(module, spnn.BatchNorm):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    coords = _random_coords(9000, 30, seed=23)
    feats = torch.randn(coords.shape[0], 4, device="cuda").half()
    normalised, residuals = [], []
    gemm = triton_conv.implicit_gemm

    def recording(*args: object, **kwargs: object) -> torch.Tensor:
        epilogue = kwargs.get("epilogue")
        normalised.append(epilogue is not None)
        residuals.append(getattr(epilogue, "residual", None) is not None)
        return gemm(*args, **kwargs)

    monkeypatch.setattr(triton_conv, "implicit_gemm", recording)
    with torch.no_grad():
        fused = model(kernels.SparseTensor(feats, coords.clone()))
        sequentials = [m for m in model.modules() if type(m) is spnn.ConvSequential]
        for module in sequentials:
            module.__class__ = torch.nn.Sequential
        plain = model(kernels.SparseTensor(feats, coords.clone()))
    pairs = sum(isinstance(a, spnn.Conv3d) and isinstance(b, spnn.BatchNorm) and a.kernel.dim() == 3
                for m in sequentials for a, b in zip(m, list(m)[1:], strict=False))
    blocks = sum(isinstance(m, ResidualBlock) for m in model.modules())
    assert pairs > 10 and sum(normalised) == pairs  # the fused pass only
    assert blocks > 4 and sum(residuals) == blocks
    torch.testing.assert_close(fused, plain, rtol=2e-2, atol=2e-2)


class _SmallUNet(torch.nn.Module):
    """Down, up and BatchNorm at two strides: the parts a graphed step pads, in a well-conditioned net."""

    def __init__(self) -> None:
        super().__init__()
        from kernels import nn as spnn

        self.body = torch.nn.Sequential(
            spnn.Conv3d(4, 16, 3), spnn.BatchNorm(16), spnn.ReLU(),
            spnn.Conv3d(16, 32, 2, stride=2), spnn.BatchNorm(32), spnn.ReLU(),
            spnn.Conv3d(32, 16, 2, stride=2, transposed=True), spnn.BatchNorm(16), spnn.ReLU(),
        )
        self.head = torch.nn.Linear(16, 5)

    def forward(self, x: kernels.SparseTensor) -> torch.Tensor:
        return self.head(self.body(x).feats)


def test_graphed_train_step_follows_the_eager_steps() -> None:
    """GraphedTrainStep: the losses and weights of the same steps taken eagerly (fp32, SGD with
    momentum), new scans read by replays, the capture's warm-up step leaving no trace.

    A small network: MinkUNet's fp32 gradients move by ~1e-2 under rounding changes as small as
    another BatchNorm summation order (measured on an H200: two replays of one step differ by 0.8 %
    with identical inputs and weights), so it cannot tell a bug from rounding; the CPU test in
    test_graph_padding.py checks MinkUNet's padded step exactly, in float64.
    """
    import copy

    from kernels.graphs import GraphedTrainStep

    torch.manual_seed(0)
    model = _SmallUNet().cuda().train()
    twin = copy.deepcopy(model)
    start = {name: value.clone() for name, value in model.state_dict().items()}
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    twin_optimizer = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9)
    graphed = GraphedTrainStep(model, torch.nn.CrossEntropyLoss(), optimizer, granularity=4096)
    second = _random_coords(9000, 30, seed=31)
    shuffled = second[torch.randperm(second.shape[0], device="cuda")]
    scans = [_random_coords(9000, 30, seed=30), second, shuffled, _random_coords(20000, 30, seed=32), second]
    for coords in scans:
        feats = torch.randn(coords.shape[0], 4, device="cuda")
        labels = torch.randint(0, 5, (coords.shape[0],), device="cuda")
        loss = graphed(kernels.SparseTensor(feats, coords), labels)
        twin_logits = twin(kernels.SparseTensor(feats, coords.clone()))
        twin_loss = torch.nn.functional.cross_entropy(twin_logits, labels)
        twin_optimizer.zero_grad()
        twin_loss.backward()
        twin_optimizer.step()
        torch.testing.assert_close(loss, twin_loss.detach(), rtol=1e-5, atol=1e-6)
    assert graphed.captures == 2
    for (name, p), q in zip(model.state_dict().items(), twin.state_dict().values(), strict=True):
        if p.is_floating_point():  # a warm-up step left in would double an update
            assert _relative_error(p - start[name], (q - start[name]).double()) < 1e-3, name


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize(("momentum", "relu"), [(0.1, True), (None, False)])
def test_masked_batch_norm_kernels_match_the_reference(dtype: torch.dtype, momentum: float | None,
                                                       relu: bool) -> None:
    """The Triton BatchNorm of padded tensors (training: masked statistics, running-statistics
    update, gradients; eval: running statistics; with and without a fused ReLU) against the
    plain-torch path in float64."""
    import copy

    from kernels import nn as spnn
    from kernels.nn.modules import _fused_inference, _masked_batch_norm

    generator = torch.Generator().manual_seed(7)
    n, real, c = 70000, 61234, 96  # several row blocks per program of the sums
    bn = spnn.BatchNorm(c, momentum=momentum).cuda()
    bn.fused_relu = relu
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    exact = copy.deepcopy(bn).double()
    feats = (torch.randn(n, c, generator=generator) * 3 + 5).to(dtype)
    feats[real:] = 0  # padding rows hold zeros
    mask = torch.zeros(n, 1)
    mask[:real] = 1
    grad = torch.randn(n, c, generator=generator)
    count = torch.tensor(float(real), dtype=torch.float64)
    x = feats.cuda().requires_grad_()
    y = _masked_batch_norm(bn, x, mask.cuda(), count.cuda())
    (y.float() * grad.cuda()).sum().backward()
    x64 = feats.double().requires_grad_()
    y64 = _masked_batch_norm(exact.cpu(), x64, mask.double(), count)  # CPU: the plain-torch path
    (y64 * grad.double()).sum().backward()
    tolerance = 1e-5 if dtype == torch.float32 else 2e-3
    pairs = (("y", y, y64), ("dx", x.grad, x64.grad), ("dweight", bn.weight.grad, exact.weight.grad),
             ("dbias", bn.bias.grad, exact.bias.grad), ("running_mean", bn.running_mean, exact.running_mean),
             ("running_var", bn.running_var, exact.running_var))
    for what, got, want in pairs:
        assert _relative_error(got.detach().cpu(), want.detach()) < tolerance, what
    assert torch.all(y[real:] == 0)
    assert bn.num_batches_tracked.item() == exact.num_batches_tracked.item() == 1

    bn.eval()
    with torch.no_grad():
        assert _fused_inference(bn, x)
        got = bn(kernels.SparseTensor(x.detach(), torch.zeros(n, 4, dtype=torch.int32, device="cuda"))).feats
    exact = exact.cpu().eval()
    with torch.no_grad():
        want = exact(kernels.SparseTensor(feats.double(), torch.zeros(n, 4, dtype=torch.int32))).feats
    assert got.dtype == dtype
    assert _relative_error(got.cpu(), want) < tolerance


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_masked_batch_norm_adds_a_residual_in_its_kernel(dtype: torch.dtype) -> None:
    """Training on a padded tensor, relu(BatchNorm(x) + residual) in the normalising pass: values
    and the gradients of x, the residual and the affine parameters against the plain-torch path
    in float64, bit-identical over two runs; padding rows stay zero."""
    import copy

    from kernels import nn as spnn
    from kernels.nn.modules import _masked_batch_norm

    generator = torch.Generator().manual_seed(8)
    n, real, c = 20000, 17001, 64
    bn = spnn.BatchNorm(c).cuda()
    with torch.no_grad():
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    exact = copy.deepcopy(bn).double().cpu()
    feats = (torch.randn(n, c, generator=generator) * 2 + 1).to(dtype)
    shortcut = torch.randn(n, c, generator=generator).to(dtype)
    feats[real:] = 0
    shortcut[real:] = 0
    mask = torch.zeros(n, 1)
    mask[:real] = 1
    grad = torch.randn(n, c, generator=generator)
    count = torch.tensor(float(real), dtype=torch.float64)
    runs = []
    for module in (copy.deepcopy(bn), bn):  # the same bits twice (partials added in a fixed order)
        x, res = feats.cuda().requires_grad_(), shortcut.cuda().requires_grad_()
        y = _masked_batch_norm(module, x, mask.cuda(), count.cuda(), residual=res)
        (y.float() * grad.cuda()).sum().backward()
        runs.append([y, x.grad, res.grad, module.weight.grad, module.running_var])
    assert all(torch.equal(a, b) for a, b in zip(*runs, strict=True))
    x64, res64 = feats.double().requires_grad_(), shortcut.double().requires_grad_()
    y64 = torch.relu(_masked_batch_norm(exact, x64, mask.double(), count) + res64)
    (y64 * grad.double()).sum().backward()
    tolerance = 1e-5 if dtype == torch.float32 else 2e-3
    pairs = (("y", y, y64), ("dx", x.grad, x64.grad), ("dres", res.grad, res64.grad),
             ("dweight", bn.weight.grad, exact.weight.grad), ("dbias", bn.bias.grad, exact.bias.grad),
             ("running_var", bn.running_var, exact.running_var))
    for what, got, want in pairs:
        assert _relative_error(got.detach().cpu(), want.detach()) < tolerance, what
    assert torch.all(y[real:] == 0)


@pytest.mark.parametrize("bad", [[511, 0, 0, 0], [-1, 0, 0, 0], [0, 131072 - 64, 0, 0], [0, 0, -131009, 0],
                                 [0, 0, 0, 131072 - 64]])
def test_sort_levels_names_coordinates_the_keys_cannot_hold(bad: list[int]) -> None:
    """The graph runners' one-sync level sort checks the range on the device (batch < 511 there)."""
    from kernels.triton import kmap as gpu_kmap

    coords = torch.tensor([[0, 1, 2, 3], [1, -5, 4, 2], bad], dtype=torch.int32, device="cuda")
    with pytest.raises(ValueError, match="out of the Triton backend's key range"):
        gpu_kmap.sort_levels(coords, [(2, 2, 2)], batch_limit=511)
    edge = torch.tensor([[510, -131008, 131007, 0]], dtype=torch.int32, device="cuda")
    assert gpu_kmap.sort_levels(torch.cat([coords[:2], edge]), [(2, 2, 2)], batch_limit=511).counts == [3]


def test_graph_runners_name_duplicate_voxels() -> None:
    """The level sort sees every input voxel's key: a repeated voxel is an error, not a wrong map."""
    from kernels.graphs import GraphedInference

    model = _SmallUNet().cuda().eval()
    graphed = GraphedInference(model, granularity=4096)
    coords = _random_coords(3000, 20, seed=40)
    feats = torch.randn(coords.shape[0], 4, device="cuda")
    with torch.no_grad():
        graphed(kernels.SparseTensor(feats, coords))  # eager: learns the strides
        repeated = torch.cat([coords, coords[:5]])
        with pytest.raises(ValueError, match="5 duplicate voxel"):
            graphed(kernels.SparseTensor(torch.cat([feats, feats[:5]]), repeated))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_add_relu_is_torchs_sum_then_relu(dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    """kernels.nn.add_relu's one-pass kernel: bit-identical values and gradients to relu(a + b)."""
    from kernels import nn as spnn
    from kernels.triton.elementwise import AddReLUFunction

    calls = []
    kernel_apply = AddReLUFunction.apply
    monkeypatch.setattr(AddReLUFunction, "apply", lambda *args: calls.append(1) or kernel_apply(*args))
    coords = _random_coords(5000, 30, seed=50)
    a = torch.randn(coords.shape[0], 96, device="cuda").to(dtype).requires_grad_()
    b = torch.randn(coords.shape[0], 96, device="cuda").to(dtype).requires_grad_()
    ours = spnn.add_relu(kernels.SparseTensor(a, coords), kernels.SparseTensor(b, coords)).feats
    a2, b2 = a.detach().clone().requires_grad_(), b.detach().clone().requires_grad_()
    ref = torch.relu(a2 + b2)
    grad = torch.randn_like(ref)
    (ours * grad).sum().backward()
    (ref * grad).sum().backward()
    assert calls, "add_relu did not take the Triton kernel"
    assert torch.equal(ours, ref) and torch.equal(a.grad, a2.grad) and torch.equal(b.grad, b2.grad)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_kernels_match_torch(dtype: torch.dtype, reduction: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """kernels.functional.cross_entropy on CUDA (the Triton kernels): torch's loss and gradient on
    the fp32 scores, ignored rows skipped; the same bits on a second run."""
    from kernels.functional import cross_entropy
    from kernels.triton.loss import CrossEntropyFunction

    calls = []
    kernel_apply = CrossEntropyFunction.apply
    monkeypatch.setattr(CrossEntropyFunction, "apply", lambda *args: calls.append(1) or kernel_apply(*args))

    generator = torch.Generator(device="cuda").manual_seed(3)
    # A sum over 60k rows (~5 each) overflows fp16's 65504, as torch's does: 7k rows keep it finite.
    n, c = (70_001 if reduction == "mean" else 7_001), 17
    scores = (3 * torch.randn(n, c, device="cuda", generator=generator)).to(dtype).requires_grad_()
    labels = torch.randint(0, c, (n,), device="cuda", generator=generator)
    labels[::7] = -100
    grad = torch.tensor(0.7, device="cuda")
    results = []
    for _ in range(2):
        loss = cross_entropy(scores, labels, reduction=reduction)
        (d_scores,) = torch.autograd.grad(loss * grad, scores)
        results.append((loss, d_scores))
    assert len(calls) == 2, "cross_entropy did not take the Triton kernels"
    reference = scores.detach().float().requires_grad_()
    ref_loss = torch.nn.functional.cross_entropy(reference, labels, reduction=reduction)
    (ref_grad,) = torch.autograd.grad(ref_loss * grad, reference)
    assert loss.dtype == dtype
    tolerance = {torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 8e-3}[dtype]
    torch.testing.assert_close(loss.float(), ref_loss, rtol=tolerance, atol=0)
    # A mean's gradient (~1e-5 per score here) is subnormal in fp16: torch's own loss on these
    # scores loses as much there, so the bar is the larger of the tolerance and torch's error.
    own = torch.nn.functional.cross_entropy(scores, labels, reduction=reduction)
    (own_grad,) = torch.autograd.grad(own * grad, scores)
    assert _relative_error(d_scores, ref_grad) < max(tolerance, 1.5 * _relative_error(own_grad, ref_grad))
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])


def test_cross_entropy_kernels_edge_cases() -> None:
    """All rows ignored: NaN mean like torch; a label out of range: a NaN loss, not a crash; fp32
    under autocast."""
    from kernels.functional import cross_entropy

    scores = torch.randn(100, 5, device="cuda", requires_grad=True)
    ignored = torch.full((100,), -100, device="cuda")
    assert torch.isnan(cross_entropy(scores, ignored))
    assert cross_entropy(scores, ignored, reduction="sum") == 0
    bad = torch.zeros(100, dtype=torch.long, device="cuda")
    bad[17] = 5
    assert torch.isnan(cross_entropy(scores, bad))
    with torch.autocast("cuda", dtype=torch.float16):
        loss = cross_entropy(scores.half(), torch.zeros(100, dtype=torch.long, device="cuda"))
    assert loss.dtype == torch.float32
