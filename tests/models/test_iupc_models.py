"""IUPC's 2D branch, attention fusion and fused network on tiny inputs (CPU, seconds)."""

from __future__ import annotations

import numpy as np
import torch

import kernels
from weak3d.models.build import build_model
from weak3d.models.fusion import AttentionFusion, CameraInputs, PointSampler
from weak3d.models.image import FUSION_CHANNELS, SwiftNetRes18
from weak3d.models.iupc import IUPCNet

H, W = 36, 64


def test_image_branch_shapes_and_gradients() -> None:
    torch.manual_seed(0)
    net = SwiftNetRes18(num_classes=17)
    images = torch.rand(2, 3, H, W) * 255  # raw 0-255, as the seed feeds them
    out = net(images)
    # conv1 has stride 1, so layer1 is at 1/2 of the input and layer3 at 1/8.
    assert out["stage1"].shape == (2, 64, 18, 32)
    assert out["stage2"].shape == (2, 128, 9, 16)
    assert out["stage3"].shape == (2, 256, 5, 8)
    assert out["stage4"].shape == (2, 128, 3, 4)  # SPP output at 1/16
    assert [out[f"stage{s}"].shape[1] for s in range(1, 5)] == list(FUSION_CHANNELS)
    assert out["logits"].shape == (2, 17, 18, 32) and out["embedding"].shape == (2, 256, 18, 32)
    (out["logits"].square().mean() + out["embedding"].square().mean()).backward()
    for name in (
        "encoder.conv1.weight",
        "encoder.layer4.1.conv2.weight",
        "spp.fuse.2.weight",
        "up.2.blend.2.weight",
        "classifier.2.weight",
        "projector.3.weight",
    ):
        grad = dict(net.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_resnet_parameter_names_follow_the_common_layout() -> None:
    keys = set(SwiftNetRes18().encoder.state_dict())
    assert {
        "conv1.weight",
        "bn1.running_mean",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer4.1.bn2.weight",
    } <= keys
    assert sum(p.numel() for n, p in SwiftNetRes18().encoder.named_parameters()) == 11_176_512  # no fc


def test_point_sampler_reads_exact_pixels_and_zero_for_unseen_points() -> None:
    maps = torch.arange(2 * 1 * 3 * 4, dtype=torch.float32).reshape(2, 1, 3, 4)
    index = torch.tensor([0, 1, 1, -1, 0])
    grid = torch.tensor([[-1.0, -1.0], [1.0, 1.0], [-1.0, 1.0], [0.0, 0.0], [1.0, -1.0]])
    sampled = PointSampler(index, grid, 2)(maps)
    assert sampled.shape == (5, 1)
    assert sampled[:, 0].tolist() == [0.0, 23.0, 20.0, 0.0, 3.0]


def test_attention_fusion_shapes_and_gradients() -> None:
    torch.manual_seed(0)
    fusion = AttentionFusion(img_channels=64, pt_channels=20)
    pt, img = torch.randn(50, 20, requires_grad=True), torch.randn(50, 64, requires_grad=True)
    att = fusion.attention(pt, img)
    assert att.shape == (50, 1) and bool(((att > 0) & (att < 1)).all())
    out = fusion(pt, img)
    assert out.shape == (50, 20) and bool((out >= 0).all())  # ends in ReLU
    out.sum().backward()
    assert pt.grad.abs().sum() > 0 and img.grad.abs().sum() > 0


def _batch(seed: int = 0, n: int = 400) -> tuple[kernels.SparseTensor, CameraInputs]:
    rng = np.random.default_rng(seed)
    xyz = rng.uniform(0, 4, (n, 3))
    xyz[: n // 2, 2] = 0.1
    coords, keep, _ = kernels.sparse_quantize(xyz, 0.1)
    batch = (np.arange(len(keep)) >= len(keep) // 2).astype(np.int32)  # two keyframes
    tensor = kernels.SparseTensor(
        torch.from_numpy(np.c_[xyz[keep], rng.uniform(0, 1, len(keep))]).float(),
        torch.from_numpy(np.c_[batch, coords].astype(np.int32)),
    )
    index = torch.from_numpy(batch * 6 + rng.integers(0, 6, len(keep)))
    index[:3] = -1  # seen by no camera
    cameras = CameraInputs(
        torch.rand(12, 3, H, W) * 255, index, torch.from_numpy(rng.uniform(-1, 1, (len(keep), 2))).float()
    )
    return tensor, cameras


def test_fused_network_forward_backward_and_detached_fusion() -> None:
    torch.manual_seed(0)
    model = build_model("iupc", cr=0.64, image_size=(H, W))
    assert isinstance(model, IUPCNet) and model.input_size == (H, W)
    assert model.net3d.widths == [20, 20, 40, 81, 163, 163, 81, 61, 61]
    voxels, cameras = _batch()
    out = model(voxels, cameras)
    n = voxels.coords.shape[0]
    assert out.x_vox.shape == (n, 17) and out.x_pix.shape == (n, 17)
    assert out.emb_3d.shape == (n, 256) and out.emb_2d.shape == (n, 256) and out.features.shape == (n, 61)
    assert bool((out.x_pix[:3] == 0).all())  # unseen points read nothing from the images
    params = dict(model.named_parameters())
    # The 3D loss reaches the fusion blocks but not the image encoder (features are detached).
    out.x_vox.square().mean().backward(retain_graph=True)
    assert params["fusion.0.fc1.weight"].grad.abs().sum() > 0
    assert params["fusion.3.out.0.weight"].grad.abs().sum() > 0
    assert params["net2d.encoder.conv1.weight"].grad is None
    # The 2D head's loss trains the image encoder; the projectors get gradients from embeddings.
    (out.x_pix.square().mean() + out.emb_2d.mean() + out.emb_3d.mean()).backward()
    for name in ("net2d.encoder.conv1.weight", "net2d.projector.3.weight", "projector3d.3.weight"):
        assert params[name].grad is not None and params[name].grad.abs().sum() > 0, name


def test_image_size_is_kept_in_the_state_dict() -> None:
    trained = build_model("iupc", cr=0.25, image_size=(H, W))
    fresh = build_model("iupc", cr=0.25)
    fresh.load_state_dict(trained.state_dict())
    assert fresh.input_size == (H, W)


def test_spvcnn_on_voxels_matches_the_point_interface() -> None:
    torch.manual_seed(0)
    model = build_model("spvcnn", cr=0.25).eval()
    voxels, _ = _batch()
    with torch.no_grad():
        logits, feats = model(voxels, return_features=True)
        direct = super(type(model), model).forward(kernels.PointTensor(voxels.feats, voxels.coords.float()))
    assert torch.equal(logits, direct) and feats["voxel_features"].shape == (voxels.coords.shape[0], 24)


def test_image_stem_stays_finite_under_float16_autocast() -> None:
    """conv1 sees raw 0-255 pixels; once SGD has grown its weights (seen on an H200 within the
    first steps of weak-label pretraining) its output passes float16's 65504 and every loss became
    NaN. The stem must run in float32 under autocast."""
    torch.manual_seed(0)
    net = SwiftNetRes18(num_classes=4, proj_channels=8).train()  # batch statistics, as in training
    with torch.no_grad():
        net.encoder.conv1.weight.mul_(500.0)  # a grown stem: |conv1 out| ~ 1e5 on 0-255 input
    images = torch.rand(2, 3, 32, 48) * 255.0
    with torch.no_grad():
        stem = net.encoder.conv1(images)
    assert float(stem.abs().max()) > 65504.0  # the premise: float16 would overflow here
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
        out = net(images)
    for name, value in out.items():
        assert torch.isfinite(value.float()).all(), name
