"""The sky and water segmentation the authors used: MIT CSAIL's ADE20K network
"resnet50dilated + ppm_deepsup" (semantic-segmentation-pytorch), with its released weights.

Written here from the architecture, so that it loads their two files
(`encoder_epoch_20.pth`, `decoder_epoch_20.pth`, plain state dicts) key for key, without the
`mit-semseg` package: that package requires the GUI build of OpenCV, which needs libGL and
replaces the headless OpenCV this project uses.

Encoder: ResNet-50 with a deep stem (three 3x3 convolutions, 64, 64 and 128 channels, the first
with stride 2, each with BN and ReLU; 3x3 max pool stride 2), bottleneck layers of 3, 4, 6, 3
blocks (stride on the 3x3 convolution). Dilated for an output stride of 8: in layer3 the
strided convolutions get stride 1 (the 3x3 one dilation 1) and the other 3x3 convolutions
dilation 2; in layer4 stride 1 with dilation 2, the others dilation 4 (padding = dilation).
Decoder (PPM): layer4's 2048 maps, plus for pool sizes 1, 2, 3, 6 an adaptive average pool,
1x1 conv to 512, BN, ReLU, each upsampled bilinearly back; concatenated (4096), 3x3 conv to 512,
BN, ReLU, (dropout), 1x1 conv to the 150 ADE20K classes. The deep-supervision branch on layer3
(`cbr_deepsup`, `conv_last_deepsup`) only trains; its tensors are loaded and not run.

The authors resize a photo to 256 x 256, normalise it with ImageNet's statistics and take the
argmax class per pixel; sky is class 2 and water 21 (0-based), `invert.dynamic_classes` lists
the dynamic ones.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from deeplandscape.evaluate import weights

NUM_CLASSES = 150
INPUT_SIZE = 256  # the authors' segmentation input: the photo resized to 256 x 256
FILES = ("ade20k-encoder", "ade20k-decoder")  # weight registry names (evaluate/weights.py)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels)


class Bottleneck(nn.Module):
    def __init__(self, inplanes: int, planes: int, stride: int, dilation: int, downsample: nn.Module | None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = _bn(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)
        self.bn2 = _bn(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = _bn(planes * 4)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + (x if self.downsample is None else self.downsample(x)))


def _layer(inplanes: int, planes: int, blocks: int, stride: int, first_dilation: int, dilation: int) -> nn.Sequential:
    """A bottleneck layer; `stride` is the original ResNet's, turned into dilation when 1 here."""
    downsample = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False), _bn(planes * 4))
    layers = [Bottleneck(inplanes, planes, stride, first_dilation, downsample)]
    layers += [Bottleneck(planes * 4, planes, 1, dilation, None) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class DilatedResNet50(nn.Module):
    """Their encoder, output stride 8: [B, 3, H, W] -> (layer3 [B, 1024, H/8, W/8], layer4 [B, 2048, ...])."""

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False), _bn(64)
        self.conv2, self.bn2 = nn.Conv2d(64, 64, 3, padding=1, bias=False), _bn(64)
        self.conv3, self.bn3 = nn.Conv2d(64, 128, 3, padding=1, bias=False), _bn(128)
        self.layer1 = _layer(128, 64, 3, 1, 1, 1)
        self.layer2 = _layer(256, 128, 4, 2, 1, 1)
        self.layer3 = _layer(512, 256, 6, 1, 1, 2)  # was stride 2: dilated
        self.layer4 = _layer(1024, 512, 3, 1, 2, 4)  # was stride 2: dilated

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        x = self.layer2(self.layer1(F.max_pool2d(x, 3, stride=2, padding=1)))
        c4 = self.layer3(x)
        return c4, self.layer4(c4)


class PPMDeepsup(nn.Module):
    """Their decoder: pyramid pooling on layer4 -> class logits [B, 150, H/8, W/8]."""

    def __init__(self, fc_dim: int = 2048, pool_scales: tuple[int, ...] = (1, 2, 3, 6)):
        super().__init__()
        self.pool_scales = pool_scales
        self.ppm = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(s), nn.Conv2d(fc_dim, 512, 1, bias=False),
                                               _bn(512), nn.ReLU()) for s in pool_scales)
        self.cbr_deepsup = nn.Sequential(nn.Conv2d(fc_dim // 2, fc_dim // 4, 3, padding=1, bias=False),
                                         _bn(fc_dim // 4), nn.ReLU())  # training only
        self.conv_last = nn.Sequential(nn.Conv2d(fc_dim + len(pool_scales) * 512, 512, 3, padding=1, bias=False),
                                       _bn(512), nn.ReLU(), nn.Dropout2d(0.1), nn.Conv2d(512, NUM_CLASSES, 1))
        self.conv_last_deepsup = nn.Conv2d(fc_dim // 4, NUM_CLASSES, 1)  # training only

    def forward(self, c5: torch.Tensor) -> torch.Tensor:
        size = c5.shape[-2:]
        pooled = [F.interpolate(p(c5), size, mode="bilinear", align_corners=False) for p in self.ppm]
        return self.conv_last(torch.cat([c5, *pooled], dim=1))


class ADE20KSegmenter(nn.Module):
    """ImageNet-normalised RGB [B, 3, H, W] -> ADE20K logits [B, 150, 256/8, 256/8] (resized to
    the authors' 256 x 256 input first); callers upsample to the photo."""

    def __init__(self):
        super().__init__()
        self.encoder, self.decoder = DilatedResNet50(), PPMDeepsup()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return self.decoder(self.encoder(x)[1])


# Batch-norm bookkeeping that is not part of the network: torch's counter (absent from older
# files) and the running sums of CSAIL's synchronised batch norm (present in theirs).
BN_BOOKKEEPING = ("num_batches_tracked", "_running_iter", "_tmp_running_mean", "_tmp_running_var")


def load_part(part: nn.Module, state: dict[str, torch.Tensor], path: str) -> None:
    """Strict loading, except `BN_BOOKKEEPING`."""
    target = part.state_dict()
    state = {k: v for k, v in state.items() if not k.endswith(BN_BOOKKEEPING)}
    for key, value in state.items():
        if key not in target:
            raise ValueError(f"{path}: unexpected key {key!r}: not the CSAIL resnet50dilated / ppm_deepsup file")
        if target[key].shape != value.shape:
            raise ValueError(f"{path}: {key!r} has shape {tuple(value.shape)}, expected {tuple(target[key].shape)}")
    missing = [k for k in target if k not in state and not k.endswith("num_batches_tracked")]
    if missing:
        raise ValueError(f"{path}: missing key {missing[0]!r}: not the CSAIL resnet50dilated / ppm_deepsup file")
    part.load_state_dict(state, strict=False)


def available() -> bool:
    """Both weight files are in the cache (the default segmentation then)."""
    return all((weights.cache_dir() / weights.REGISTRY[name].filename).is_file() for name in FILES)


def check_files() -> None:
    """`MissingWeightsError` naming the first missing file and `deeplandscape weights fetch ade20k`."""
    for name in FILES:
        weights.weight_path(name)


def load_ade20k(device: torch.device | str = "cpu", folder: str | None = None) -> ADE20KSegmenter:
    """The network with the released weights from the cache (or `folder`, the cache a driver
    named); `MissingWeightsError` names the missing file and `deeplandscape weights fetch
    ade20k` (never random weights)."""
    net = ADE20KSegmenter()
    for part, name in ((net.encoder, FILES[0]), (net.decoder, FILES[1])):
        path = Path(folder) / weights.REGISTRY[name].filename if folder else weights.weight_path(name)
        load_part(part, weights.load_state_dict(name, path), str(path))
    return net.to(device).eval().requires_grad_(False)
