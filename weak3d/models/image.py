"""IUPC's 2D branch: SwiftNet with a ResNet-18 encoder, a pixel classifier and a 2D projector.

Written from the architecture description in the IUPC notes (§4), not from any implementation:

- ResNet-18 encoder with a 7x7 conv1 of **stride 1** (standard ResNet uses 2), then a stride-2
  max-pool; layer strides 1/2/2/2, so layer1 is at 1/2 and layer4 at 1/16 of the input. Input is
  the raw 0-255 RGB image (the seed normalises nothing).
- Spatial pyramid pooling on layer4: a 1x1 bottleneck to 128 channels, three pooled levels
  (grids 8, 4, 2 rows, columns scaled by the aspect ratio) of 42 channels each, upsampled and
  concatenated (128 + 3*42 = 254) and fused back to 128 channels.
- Three upsampling ladder blocks back to layer1's resolution (1/2 of the input), each adding a
  1x1-adapted skip (the pre-activation outputs of layer3, layer2, layer1) and a 3x3 blend.
- Heads: `classifier` = BN-ReLU-Conv1x1(128 -> classes); `projector` = BN-ReLU-Conv1x1(128 -> 256),
  BN, ReLU, Conv1x1(256 -> 256).

`forward(images)` returns a dict with the fusion features `stage1..stage4` (layer1/2/3
pre-activations with 64/128/256 channels and the SPP output with 128), `logits` and `embedding`
at 1/2 resolution. Encoder parameter names follow the common ResNet layout (`conv1`, `bn1`,
`layer1.0.conv1`, `layer2.0.downsample.0`, ...), so an ImageNet ResNet-18 state dict from a local
file loads onto `encoder` (the 1000-way `fc` is ignored).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger(__name__)

FUSION_CHANNELS = (64, 128, 256, 128)  # channels of stage1..stage4 handed to the 3D fusion
SPP_GRIDS = (8, 4, 2)  # the seed defines (8, 4, 2, 1) but uses only the first three
SPP_BN_MOMENTUM = 0.012  # SwiftNet's SPP batch-norm momentum, kept as the seed has it


def _conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """ResNet basic block; `forward` returns the sum *before* the final ReLU (SwiftNet's skips)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_channels, out_channels, stride)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = _conv3x3(out_channels, out_channels)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        return self.bn2(self.conv2(out)) + identity


def _layer(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        BasicBlock(in_channels, out_channels, stride), BasicBlock(out_channels, out_channels)
    )


def _run_layer(layer: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """Pre-activation output of a ResNet layer (every block but the last is followed by a ReLU)."""
    for i, block in enumerate(layer):
        x = block(x)
        if i + 1 < len(layer):
            x = F.relu(x)
    return x


class ResNet18Encoder(nn.Module):
    """ResNet-18 with a stride-1 conv1 (IUPC); returns the pre-activations of layer1..layer4."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=1, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _layer(64, 64, 1)
        self.layer2 = _layer(64, 128, 2)
        self.layer3 = _layer(128, 256, 2)
        self.layer4 = _layer(256, 512, 2)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        # The stem sees raw 0-255 pixels, and SGD grows conv1's weights fast (its gradient scales
        # with the pixels): under float16 autocast its output passed 65504 within the first steps
        # and every loss became NaN. So conv1 + bn1 run in float32; BN brings the range back.
        with torch.autocast(images.device.type, enabled=False):
            x = F.relu(self.bn1(self.conv1(images.float())))
        x = self.maxpool(x)
        outputs = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = _run_layer(layer, x)
            outputs.append(x)
            x = F.relu(x)
        return outputs


class BNReLUConv(nn.Sequential):
    """BatchNorm -> ReLU -> Conv (SwiftNet's pre-activation unit)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 1, bn_momentum: float = 0.1
    ) -> None:
        super().__init__(
            nn.BatchNorm2d(in_channels, momentum=bn_momentum),
            nn.ReLU(),
            nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False),
        )


class SpatialPyramidPooling(nn.Module):
    """SwiftNet's SPP: bottleneck, pooled levels at aspect-ratio-scaled grids, fuse."""

    def __init__(
        self,
        in_channels: int = 512,
        bottleneck: int = 128,
        level_channels: int = 42,
        out_channels: int = 128,
        grids: tuple[int, ...] = SPP_GRIDS,
    ) -> None:
        super().__init__()
        self.grids = grids
        self.bottleneck = BNReLUConv(in_channels, bottleneck, bn_momentum=SPP_BN_MOMENTUM)
        self.levels = nn.ModuleList(
            BNReLUConv(bottleneck, level_channels, bn_momentum=SPP_BN_MOMENTUM) for _ in grids
        )
        self.fuse = BNReLUConv(
            bottleneck + level_channels * len(grids), out_channels, bn_momentum=SPP_BN_MOMENTUM
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bottleneck(x)
        height, width = x.shape[2:]
        aspect = width / height
        pyramid = [x]
        for grid, level in zip(self.grids, self.levels, strict=True):
            # Wide images get proportionally more columns, so pooled cells stay roughly square.
            pooled = F.adaptive_avg_pool2d(x, (grid, max(1, round(grid * aspect))))
            pyramid.append(
                F.interpolate(level(pooled), (height, width), mode="bilinear", align_corners=False)
            )
        return self.fuse(torch.cat(pyramid, dim=1))


class UpsampleBlock(nn.Module):
    """Ladder-style upsampling: resize to the skip, add the 1x1-adapted skip, blend with a 3x3."""

    def __init__(self, skip_channels: int, channels: int = 128) -> None:
        super().__init__()
        self.skip = BNReLUConv(skip_channels, channels, 1)
        self.blend = BNReLUConv(channels, channels, 3)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        skip = self.skip(skip)
        x = F.interpolate(x, skip.shape[2:], mode="bilinear", align_corners=False)
        return self.blend(x + skip)


class SwiftNetRes18(nn.Module):
    """The 2D branch: encoder + SPP + decoder + pixel classifier + 2D projector."""

    def __init__(
        self,
        num_classes: int = 17,
        channels: int = 128,
        proj_channels: int = 256,
        pretrained: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.encoder = ResNet18Encoder()
        self.spp = SpatialPyramidPooling(512, channels, 42, channels)
        self.up = nn.ModuleList([UpsampleBlock(c, channels) for c in (256, 128, 64)])
        self.classifier = BNReLUConv(channels, num_classes, 1)
        self.projector = nn.Sequential(
            BNReLUConv(channels, proj_channels, 1),
            nn.BatchNorm2d(proj_channels),
            nn.ReLU(),
            nn.Conv2d(proj_channels, proj_channels, 1),
        )
        self.reset_parameters()
        self.pretrained = str(pretrained) if pretrained else None
        if pretrained:
            load_imagenet_resnet18(self.encoder, pretrained)

    def reset_parameters(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """images: [M, 3, H, W] raw 0-255 RGB; returns fusion features and 1/2-resolution heads."""
        l1, l2, l3, l4 = self.encoder(images)
        spp = self.spp(l4)
        x = spp
        for block, skip in zip(self.up, (l3, l2, l1), strict=True):
            x = block(x, skip)
        return {
            "stage1": l1,
            "stage2": l2,
            "stage3": l3,
            "stage4": spp,
            "logits": self.classifier(x),
            "embedding": self.projector(x),
        }


def load_imagenet_resnet18(encoder: ResNet18Encoder, path: str | Path) -> None:
    """Load an ImageNet ResNet-18 state dict from a local file (never downloaded) onto `encoder`.

    Non-strict like the seed: the classifier `fc.*` has no counterpart, and conv1's 7x7 weights
    load even though its stride differs. A file matching none of the encoder's keys is an error,
    since it would silently leave the encoder random.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config key train.image_weights: {path} not found (a local ResNet-18 .pth)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    own = encoder.state_dict()
    usable = {k: v for k, v in state.items() if k in own and tuple(v.shape) == tuple(own[k].shape)}
    if not usable:
        raise ValueError(f"{path}: no ResNet-18 encoder weights found (keys like 'layer1.0.conv1.weight')")
    missing = sorted(set(own) - set(usable))
    encoder.load_state_dict(usable, strict=False)
    log.info(
        "ImageNet ResNet-18 weights from %s: %d tensors loaded, %d missing %s",
        path,
        len(usable),
        len(missing),
        missing[:5],
    )
