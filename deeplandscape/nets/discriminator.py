"""The static discriminator D_st and the pairwise discriminator D_pair (paper section 3.1).

D_st is StyleGAN v1's progressive discriminator with minibatch-stddev before the 4x4 block.

D_pair sees a pair of frames [B, 2, 3, H, W] and has two variants:
- "paper": it "duplicates the architecture of D_st except the first convolutional block,
  which is applied separately to each frame". The per-frame features of the two frames are
  concatenated and a 1x1 convolution fuses them back to the trunk's width.
- "early_fusion" (the authors' code): each frame has its own from-RGB layer with C/2
  channels; the two halves are concatenated and the rest is D_st's trunk.

Progressive growing fades a new resolution in over the previous network on the 2x
downsampled input, so that alpha = 0 is exactly the previous network. For "paper" the
previous network fused the frames one block lower (after ITS per-frame block), so the fade
happens there (`model.pair_fade = "continuous"`); runs made before that setting faded at the
new block's output through a fresh fuse layer ("legacy"), a jump at every resolution change.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from deeplandscape.config import ModelConfig
from deeplandscape.nets.generator import channels_at, layer_gain, level_of
from deeplandscape.nets.layers import HE_GAIN, Blur, EqualConv2d, EqualLinear, minibatch_stddev

PAIR_VARIANTS = ("paper", "early_fusion")


class FromRGB(nn.Module):
    def __init__(self, out_ch: int, in_ch: int = 3, gain: float = HE_GAIN):
        super().__init__()
        self.conv = EqualConv2d(in_ch, out_ch, 1, gain=gain)

    def forward(self, x):
        return F.leaky_relu(self.conv(x), 0.2)


class DownBlock(nn.Module):
    """conv3x3 -> LReLU -> blur -> conv3x3 -> LReLU -> 2x average pool."""

    def __init__(self, in_ch: int, out_ch: int, gain: float = HE_GAIN):
        super().__init__()
        self.conv1 = EqualConv2d(in_ch, in_ch, 3, padding=1, gain=gain)
        self.blur = Blur(in_ch)
        self.conv2 = EqualConv2d(in_ch, out_ch, 3, padding=1, gain=gain)

    def forward(self, x):
        x = F.leaky_relu(self.conv1(x), 0.2)
        x = F.leaky_relu(self.conv2(self.blur(x)), 0.2)
        return F.avg_pool2d(x, 2)


class FinalBlock(nn.Module):
    """The 4x4 block: minibatch-stddev, conv, dense, logit."""

    def __init__(self, ch: int, mbstd_group: int, gain: float = HE_GAIN):
        super().__init__()
        self.mbstd_group = mbstd_group
        self.conv = EqualConv2d(ch + 1, ch, 3, padding=1, gain=gain)
        self.fc = EqualLinear(ch * 16, ch, gain=gain)
        self.out = EqualLinear(ch, 1)  # gain 1: the logit

    def forward(self, x):
        x = minibatch_stddev(x, self.mbstd_group)
        x = F.leaky_relu(self.conv(x), 0.2)
        x = F.leaky_relu(self.fc(x.flatten(1)), 0.2)
        return self.out(x)  # [B, 1]


class Discriminator(nn.Module):
    """Progressive discriminator. `pair=False`: D_st on [B, 3, H, W]; `pair=True`: D_pair."""

    def __init__(self, cfg: ModelConfig, pair: bool = False):
        super().__init__()
        if pair and cfg.pair_d not in PAIR_VARIANTS:
            raise ValueError(f"model.pair_d must be one of {PAIR_VARIANTS}, got {cfg.pair_d!r}")
        self.cfg = cfg
        self.pair = pair
        self.variant = cfg.pair_d if pair else "static"
        self.num_levels = level_of(cfg.resolution) + 1
        self.continuous_fade = cfg.pair_fade == "continuous"
        gain = layer_gain(cfg)
        ch = [channels_at(4 * 2**n, cfg) for n in range(self.num_levels)]
        # blocks[n] takes level n (4*2^n px) down to level n-1; blocks[0] is the 4x4 head.
        self.blocks = nn.ModuleList([FinalBlock(ch[0], cfg.mbstd_group, gain)])
        self.blocks.extend(DownBlock(ch[n], ch[n - 1], gain) for n in range(1, self.num_levels))
        if self.variant == "early_fusion":
            self.from_rgb = nn.ModuleList(FromRGB(c // 2, gain=gain) for c in ch)
            self.from_rgb_b = nn.ModuleList(FromRGB(c - c // 2, gain=gain) for c in ch)
        else:
            self.from_rgb = nn.ModuleList(FromRGB(c, gain=gain) for c in ch)
        if self.variant == "paper":
            # fuse[n]: concatenated per-frame features at level n (2C) -> the trunk's C.
            self.fuse = nn.ModuleList(EqualConv2d(2 * c, c, 1, gain=gain) for c in ch)

    def _fuse(self, level: int, x: torch.Tensor) -> torch.Tensor:
        # [2B, C, h, w] with frames interleaved -> [B, 2C, h, w] -> [B, C, h, w]
        b2, c, h, w = x.shape
        return F.leaky_relu(self.fuse[level](x.reshape(b2 // 2, 2 * c, h, w)), 0.2)

    def _input(self, x: torch.Tensor, level: int) -> torch.Tensor:
        """Features at the input of block `level` from images (or pairs) at that level's size."""
        if self.variant == "static":
            return self.from_rgb[level](x)
        if self.variant == "early_fusion":
            return torch.cat([self.from_rgb[level](x[:, 0]), self.from_rgb_b[level](x[:, 1])], dim=1)
        return self._fuse(level, self.from_rgb[level](x.flatten(0, 1)))  # paper, skip path only

    def forward(self, x: torch.Tensor, resolution: int | None = None, alpha: float = 1.0) -> torch.Tensor:
        """x: [B, 3, r, r] (D_st) or [B, 2, 3, r, r] (D_pair) in [-1, 1] -> logits [B, 1]."""
        resolution = resolution or self.cfg.resolution
        top = level_of(resolution)
        expected = (2, 3, resolution, resolution) if self.pair else (3, resolution, resolution)
        assert tuple(x.shape[1:]) == expected, f"expected [B, {expected}], got {tuple(x.shape)}"
        if top == 0:
            assert self.variant != "paper", "the paper D_pair needs a block above 4x4"
            return self.blocks[0](self._input(x, 0))
        if self.variant == "paper":
            # The first block of the current resolution runs on each frame separately.
            h = self._fuse(top - 1, self.blocks[top](self.from_rgb[top](x.flatten(0, 1))))
            if alpha < 1.0 and self.continuous_fade and top >= 2:
                # Fade in where the previous resolution's network fused its frames, one block
                # lower: at alpha = 0 this is exactly that network on the downsampled pair.
                h = self.blocks[top - 1](h)
                skip = self._fuse(top - 2, self.blocks[top - 1](self.from_rgb[top - 1](downsample(x).flatten(0, 1))))
                h = torch.lerp(skip, h, alpha)
                top -= 1
            elif alpha < 1.0:  # "legacy" (runs made before model.pair_fade), or fading in 8 px
                h = torch.lerp(self._input(downsample(x), top - 1), h, alpha)
        else:
            h = self.blocks[top](self._input(x, top))
            if alpha < 1.0:
                h = torch.lerp(self._input(downsample(x), top - 1), h, alpha)
        for n in range(top - 1, -1, -1):
            h = self.blocks[n](h)
        return h


def downsample(x: torch.Tensor) -> torch.Tensor:
    """2x box downsampling of images [B, 3, H, W] or pairs [B, 2, 3, H, W]."""
    if x.ndim == 5:
        b = x.shape[0]
        return F.avg_pool2d(x.flatten(0, 1), 2).unflatten(0, (b, 2))
    return F.avg_pool2d(x, 2)
