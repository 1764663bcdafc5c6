"""The DeepLandscape generator: mapping M and StyleGAN-v1 synthesis G with two noise sets.

Paper section 3.1: z = [z_st, z_dyn] goes through the mapping MLP M to w. The synthesis
network has one block per resolution 4, 8, ..., R. Each resolution level n has ONE static
noise map S_st[n] and ONE dynamic map S_dyn[n] (single-channel, shared by the block's two
convolutions); every convolution adds both with its own learned per-channel scales:

    conv -> + scale_st * S_st -> + scale_dyn * S_dyn -> LeakyReLU(0.2) -> AdaIN(w_n)

One style vector w_n per level (the paper's W = {w_1, ..., w_N}). Progressive growing:
`forward(..., resolution=r, alpha=a)` runs the levels up to r and fades the new level's RGB
output in over the upsampled output of the level below.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from deeplandscape.config import ModelConfig
from deeplandscape.nets.layers import HE_GAIN, AdaIN, Blur, EqualConv2d, EqualLinear, NoiseInjection, PixelNorm


def level_of(resolution: int) -> int:
    """Level index of a resolution: 4 px is level 0, 8 px level 1, ..."""
    level = int(math.log2(resolution)) - 2
    if level < 0 or 4 * 2**level != resolution:
        raise ValueError(f"resolution must be a power of two >= 4, got {resolution}")
    return level


def channels_at(resolution: int, cfg: ModelConfig) -> int:
    return min(cfg.channel_max, cfg.channel_base // resolution)


MAPPING_SLOPE = 0.2  # M's LeakyReLU slope; its last layer ends in one, which the lighting network A undoes


def layer_gain(cfg: ModelConfig) -> float:
    """The equalised-lr gain of layers followed by a LeakyReLU: sqrt(2) (StyleGAN v1), or 1 in
    runs made before `model.he_gain` (their saved configs read it as false)."""
    return HE_GAIN if cfg.he_gain else 1.0


class MappingNetwork(nn.Module):
    """M: z = [z_st, z_dyn] -> w, PixelNorm then `mapping_layers` equalised-lr linear layers."""

    def __init__(self, z_dim: int, w_dim: int, num_layers: int, gain: float = HE_GAIN):
        super().__init__()
        layers: list[nn.Module] = [PixelNorm()]
        for i in range(num_layers):
            layers += [EqualLinear(z_dim if i == 0 else w_dim, w_dim, gain=gain), nn.LeakyReLU(MAPPING_SLOPE)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)  # [B, w_dim]


class StyledConv(nn.Module):
    """(upsample) conv -> + static noise -> + dynamic noise -> LeakyReLU -> AdaIN.

    `in_ch = 0`: no convolution (the 4x4 level's first layer starts from the learned constant)."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, upsample: bool, separate_noise: bool,
                 gain: float = HE_GAIN, pad_mode: str = "reflect"):
        super().__init__()
        self.upsample = upsample
        self.conv = EqualConv2d(in_ch, out_ch, 3, padding=1, gain=gain, pad_mode=pad_mode) if in_ch else None
        self.blur = Blur(out_ch, pad_mode) if upsample else None
        self.noise_st = NoiseInjection(out_ch)
        self.noise_dyn = NoiseInjection(out_ch) if separate_noise else None
        self.adain = AdaIN(out_ch, w_dim)

    def forward(self, x, w, S_st, S_dyn):
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv(x)
        if self.blur is not None:
            x = self.blur(x)
        return self.post(x, w, S_st, S_dyn)

    def post(self, x, w, S_st, S_dyn):
        x = self.noise_st(x, S_st)
        if self.noise_dyn is not None:
            x = self.noise_dyn(x, S_dyn)
        return self.adain(F.leaky_relu(x, 0.2), w)


class SynthesisBlock(nn.Module):
    """One resolution level: two styled convolutions sharing the level's w, S_st and S_dyn."""

    def __init__(self, in_ch: int, out_ch: int, w_dim: int, first: bool, separate_noise: bool,
                 gain: float = HE_GAIN, pad_mode: str = "reflect"):
        super().__init__()
        self.first = first
        if first:
            # The 4x4 level starts from a learned constant instead of an upsampling conv
            # (conv1 has no convolution, only noise, LeakyReLU and AdaIN).
            # Random, not ones: instance norm of a spatially flat map is 0/0, which leaves
            # the first styles with float-noise gradients that Adam blows up to full steps.
            self.const = nn.Parameter(torch.randn(1, out_ch, 4, 4))
            self.conv1 = StyledConv(0, out_ch, w_dim, False, separate_noise, gain, pad_mode)
        else:
            self.conv1 = StyledConv(in_ch, out_ch, w_dim, True, separate_noise, gain, pad_mode)
        self.conv2 = StyledConv(out_ch, out_ch, w_dim, False, separate_noise, gain, pad_mode)
        self.to_rgb = EqualConv2d(out_ch, 3, 1)  # gain 1: a linear output

    def forward(self, x, w, S_st, S_dyn):
        if self.first:
            x = self.conv1.post(self.const.expand(w.shape[0], -1, -1, -1), w, S_st, S_dyn)
        else:
            x = self.conv1(x, w, S_st, S_dyn)
        return self.conv2(x, w, S_st, S_dyn)


class Generator(nn.Module):
    """M and G together. `forward(ws, S_st, S_dyn, resolution, alpha) -> images in [-1, 1]`."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if not 0 <= cfg.z_dyn_dim < cfg.z_dim:
            raise ValueError(f"model.z_dyn_dim must be in [0, z_dim), got {cfg.z_dyn_dim}")
        self.cfg = cfg
        self.num_levels = level_of(cfg.resolution) + 1
        gain = layer_gain(cfg)
        self.M = MappingNetwork(cfg.z_dim, cfg.w_dim, cfg.mapping_layers, gain)
        self.blocks = nn.ModuleList()
        in_ch = 0
        for level in range(self.num_levels):
            out_ch = channels_at(4 * 2**level, cfg)
            self.blocks.append(SynthesisBlock(in_ch, out_ch, cfg.w_dim, level == 0, cfg.separate_noise, gain,
                                              cfg.g_padding))
            in_ch = out_ch

    # --- latents ---------------------------------------------------------------------------
    @property
    def z_st_dim(self) -> int:
        return self.cfg.z_dim - self.cfg.z_dyn_dim

    def split_z(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """z = [z_st, z_dyn]: the dynamic part is the last `z_dyn_dim` coordinates."""
        return z[:, : self.z_st_dim], z[:, self.z_st_dim :]

    def noise_shapes(self, resolution: int) -> list[tuple[int, int, int]]:
        """Shapes [1, H, W] of S_st[n] (and S_dyn[n]) for the levels that `resolution` uses."""
        return [(1, 4 * 2**n, 4 * 2**n) for n in range(level_of(resolution) + 1)]

    def make_noise(self, batch: int, resolution: int, generator: torch.Generator | None = None,
                   device: torch.device | str = "cpu") -> list[torch.Tensor]:
        """One unit-normal map per level: [B, 1, 4*2^n, 4*2^n] for n = 0..level(resolution)."""
        return [torch.randn(batch, *s, generator=generator, device=device) for s in self.noise_shapes(resolution)]

    def ws_from_z(self, z: torch.Tensor) -> torch.Tensor:
        """Map z [B, z_dim] to per-level styles ws [B, num_levels, w_dim] (no mixing)."""
        w = self.M(z)
        return w[:, None, :].expand(-1, self.num_levels, -1)

    # --- synthesis -------------------------------------------------------------------------
    def forward(
        self,
        ws: torch.Tensor,  # [B, num_levels, w_dim]: one style per level
        S_st: list[torch.Tensor],  # per level [B, 1, r, r]
        S_dyn: list[torch.Tensor] | None,  # per level [B, 1, r, r]; None when separate_noise is off
        resolution: int | None = None,  # output resolution (progressive growing)
        alpha: float = 1.0,  # fade-in of the newest level, 0 -> 1
    ) -> torch.Tensor:
        resolution = resolution or self.cfg.resolution
        top = level_of(resolution)
        assert ws.ndim == 3 and ws.shape[1] >= top + 1, f"ws must be [B, levels, w_dim], got {tuple(ws.shape)}"
        assert len(S_st) >= top + 1, f"need {top + 1} static noise maps, got {len(S_st)}"
        if self.cfg.separate_noise:
            assert S_dyn is not None and len(S_dyn) >= top + 1, "need one dynamic noise map per level"
        x = prev = None
        for n in range(top + 1):
            prev = x
            x = self.blocks[n](x, ws[:, n], S_st[n], S_dyn[n] if S_dyn is not None else None)
        rgb = self.blocks[top].to_rgb(x)  # [B, 3, r, r]
        if alpha < 1.0 and top > 0:
            skip = F.interpolate(self.blocks[top - 1].to_rgb(prev), scale_factor=2, mode="nearest")
            rgb = torch.lerp(skip, rgb, alpha)
        return rgb


def mix_styles(ws_a: torch.Tensor, ws_b: torch.Tensor, cut: torch.Tensor) -> torch.Tensor:
    """Style mixing: levels < cut[i] take ws_a, the rest ws_b. ws: [B, L, w_dim], cut: [B]."""
    levels = torch.arange(ws_a.shape[1], device=ws_a.device)
    take_a = (levels[None, :] < cut[:, None])[:, :, None]  # [B, L, 1]
    return torch.where(take_a, ws_a, ws_b)
