"""StyleGAN-v1 building blocks: equalised learning rate, PixelNorm, AdaIN, noise, blur.

Equalised learning rate (Karras et al. 2018): weights are stored as N(0, 1) and scaled
at run time by He's constant gain / sqrt(fan_in), so Adam sees every layer at the same scale.
StyleGAN v1 uses gain sqrt(2) (`HE_GAIN`) for every layer that a LeakyReLU follows and 1 for
the style, to-RGB and logit layers; runs made before `model.he_gain` existed used 1 throughout.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

HE_GAIN = math.sqrt(2.0)  # He et al. 2015, the gain of a layer followed by a (Leaky)ReLU


class EqualLinear(nn.Module):
    def __init__(self, in_dim: int, out_dim: int, bias_init: float = 0.0, lr_mul: float = 1.0, gain: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.w_scale = gain * lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.w_scale, self.bias * self.lr_mul)


PAD_MODES = ("reflect", "zeros")


class EqualConv2d(nn.Module):
    """`pad_mode` "zeros" (StyleGAN v1) or "reflect" (the generator's: zeros draw a frame, see
    `ModelConfig.g_padding`)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, padding: int = 0, gain: float = 1.0,
                 pad_mode: str = "zeros"):
        super().__init__()
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        self.weight = nn.Parameter(torch.randn(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.w_scale = gain / math.sqrt(in_ch * kernel * kernel)
        self.padding, self.pad_mode = padding, pad_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.padding and self.pad_mode != "zeros":
            x = F.pad(x, (self.padding,) * 4, mode=self.pad_mode)
            return F.conv2d(x, self.weight * self.w_scale, self.bias)
        return F.conv2d(x, self.weight * self.w_scale, self.bias, padding=self.padding)


class PixelNorm(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class Blur(nn.Module):
    """The [1, 2, 1] low-pass StyleGAN v1 applies after upsampling and before downsampling.

    Written as shifted adds of a zero-padded tensor (separable, exactly a 3x3 depthwise
    convolution with kernel [1,2,1]x[1,2,1]/16): the grouped convolution it replaces runs
    its double backward (R1) one channel at a time on the CPU, which cost a third of a step.
    """

    def __init__(self, channels: int, pad_mode: str = "zeros"):
        super().__init__()
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        self.channels = channels
        self.pad_mode = "constant" if pad_mode == "zeros" else pad_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(x, (1, 1, 1, 1), mode=self.pad_mode)
        x = 0.25 * x[..., :, :-2] + 0.5 * x[..., :, 1:-1] + 0.25 * x[..., :, 2:]
        return 0.25 * x[..., :-2, :] + 0.5 * x[..., 1:-1, :] + 0.25 * x[..., 2:, :]


class NoiseInjection(nn.Module):
    """Adds a single-channel noise map with a learned per-channel scale (zero at start)."""

    def __init__(self, channels: int):
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        # x: [B, C, H, W], noise: [B, 1, H, W]
        return x + self.scale * noise


class AdaIN(nn.Module):
    """Instance norm, then a per-channel scale and bias computed from w."""

    def __init__(self, channels: int, w_dim: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels)
        self.style = EqualLinear(w_dim, channels * 2)
        # Scale starts at 1, bias at 0: the block starts as plain instance norm.
        with torch.no_grad():
            self.style.bias[:channels] = 1.0
            self.style.bias[channels:] = 0.0

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.style(w)[:, :, None, None].chunk(2, dim=1)  # [B, C, 1, 1] each
        return gamma * self.norm(x) + beta


def minibatch_stddev(x: torch.Tensor, group_size: int = 4) -> torch.Tensor:
    """Append one feature map: the std over groups of samples, averaged (Karras et al. 2018).

    Groups are runs of consecutive samples, so splitting a batch into contiguous per-worker
    slices (a multiple of the group size) gives every sample the same group.
    """
    b, c, h, w = x.shape
    g = min(group_size, b)
    while b % g:  # groups must tile the batch (small or odd last batches)
        g -= 1
    y = x.reshape(b // g, g, c, h, w)
    y = (y - y.mean(dim=1, keepdim=True)).pow(2).mean(dim=1).add(1e-8).sqrt()  # [B/g, C, H, W]
    y = y.mean(dim=(1, 2, 3)).reshape(b // g, 1, 1, 1).repeat_interleave(g, 0).expand(b, 1, h, w)
    return torch.cat([x, y], dim=1)
