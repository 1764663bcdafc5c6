"""Warping noise maps with the sky / water homographies (paper 3.1 "Sampling videos").

Inverse mapping: the output pixel at normalised position p takes the input at H^-1 p, so
content moves FORWARD by H. Rows above the horizon use the sky homography, rows below it
the water one (the sky's mirror image, see `homography.reflection_homography`).

We build the sampling grid ourselves and let torch's `grid_sample` do the interpolation:
kornia's `warp_perspective` takes one homography per image, and here each image needs two,
split at the horizon row.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from deeplandscape.animate.homography import Motion, frame_homographies

__all__ = ["warp_maps", "warp_noise_like_authors", "animate_noise"]

Matrices = np.ndarray | torch.Tensor


def _inverse(H: Matrices, n: int, device: torch.device) -> torch.Tensor:
    """H^-1 as float32 [n, 3, 3] on `device`: inverted in float64, converted once."""
    Hd = H.detach().to("cpu", torch.float64).numpy() if isinstance(H, torch.Tensor) else np.asarray(H, np.float64)
    if Hd.shape == (3, 3):
        Hd = np.broadcast_to(Hd, (n, 3, 3))
    if Hd.shape != (n, 3, 3):
        raise ValueError(f"expected homographies [{n}, 3, 3] or [3, 3], got {tuple(Hd.shape)}")
    return torch.from_numpy(np.linalg.inv(Hd)).to(device, torch.float32)


def _sampling_grid(
    size: tuple[int, int],  # (H, W) of the maps to warp
    sky_inv: torch.Tensor,  # [N, 3, 3] float32, inverse sky homographies
    water_inv: torch.Tensor,  # [N, 3, 3] float32, inverse water homographies
    horizon: float,
) -> torch.Tensor:
    """grid_sample's grid [N, H, W, 2]: where each output pixel centre samples the input."""
    h, w = size
    dev = sky_inv.device
    # Pixel centres in normalised coordinates (align_corners=False convention).
    ys = (torch.arange(h, device=dev, dtype=torch.float32) * 2 + 1) / h - 1  # [H]
    xs = (torch.arange(w, device=dev, dtype=torch.float32) * 2 + 1) / w - 1  # [W]
    below = (ys >= 2 * horizon - 1).view(1, h, 1, 1)  # [1, H, 1, 1] rows using the water transform
    M = torch.where(below, water_inv.view(-1, 1, 3, 3), sky_inv.view(-1, 1, 3, 3))  # [N, H, 3, 3]
    # M @ (x, y, 1) written out: a batched 3x3 matmul per pixel is several times slower.
    x, y = xs.view(1, 1, w), ys.view(1, h, 1)
    qx, qy, qw = (M[..., k, 0, None] * x + M[..., k, 1, None] * y + M[..., k, 2, None] for k in range(3))  # [N, H, W]
    return torch.stack([qx / qw, qy / qw], dim=-1)  # [N, H, W, 2] (x, y)


def _sample(maps: torch.Tensor, grid: torch.Tensor, padding: str) -> torch.Tensor:
    """Bilinear lookup of maps [N, C, H, W] at grid [N, H', W', 2] -> [N, C, H', W']."""
    return F.grid_sample(maps, grid.to(maps.dtype), mode="bilinear", padding_mode=padding, align_corners=False)


def _warp_inv(
    maps: torch.Tensor,  # [N, C, H, W]
    sky_inv: torch.Tensor,  # [N, 3, 3] float32
    water_inv: torch.Tensor,  # [N, 3, 3] float32
    horizon: float,
    padding: str,
) -> torch.Tensor:
    return _sample(maps, _sampling_grid(maps.shape[-2:], sky_inv, water_inv, horizon), padding)


def warp_maps(
    maps: torch.Tensor,  # [N, C, H, W], float32 (C = 1 for noise maps)
    sky: Matrices,  # [N, 3, 3] or [3, 3], forward homographies above the horizon
    water: Matrices | None,  # [N, 3, 3] or [3, 3] below the horizon; None: the sky one everywhere
    horizon: float = 0.5,  # horizon height, fraction of the image from the top
    padding: str = "reflection",  # grid_sample padding for content entering the frame
) -> torch.Tensor:
    """Move maps forward by the homographies: out(p) = in(H^-1 p), bilinear. -> [N, C, H, W]

    Reflection padding fills the area uncovered at the borders with values of the same
    distribution, where zeros would put flat patches into the noise the generator sees.
    """
    assert maps.ndim == 4, f"maps must be [N, C, H, W], got {tuple(maps.shape)}"
    n = maps.shape[0]
    sky_inv = _inverse(sky, n, maps.device)
    water_inv = sky_inv if water is None else _inverse(water, n, maps.device)
    return _warp_inv(maps, sky_inv, water_inv, horizon, padding)


def _restore_stats(warped: torch.Tensor, like: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Give each sample of `warped` [N, ...] the mean and std of the same sample of `like`."""
    dims = tuple(range(1, like.ndim))
    mu_w, sd_w = warped.mean(dims, keepdim=True), warped.std(dims, keepdim=True)
    mu, sd = like.mean(dims, keepdim=True), like.std(dims, keepdim=True)
    return (warped - mu_w) * (sd / sd_w.clamp_min(eps)) + mu


def _authors_size(maps: torch.Tensor, out_size: int) -> int:
    return max(out_size, *maps.shape[-2:])  # never warp below the map's own resolution


def _resampled(maps: torch.Tensor, warped_big: torch.Tensor, residual: torch.Tensor, sky_inv: torch.Tensor,
               water_inv: torch.Tensor, horizon: float, padding: str) -> torch.Tensor:
    """The authors' warp of `maps` [1 or N, C, r, r] made exact at the identity.

    `warped_big` is the map bicubic-upsampled and warped at the output size, [N, C, S, S];
    `residual` = maps - area(bicubic(maps)), what that round trip loses (the map's finest
    detail). The residual is warped too, at the map's own size, and added back; then each
    sample gets `maps`' mean and std. Under the identity both warps are exact, so the result
    is `maps` itself: frame 0 of an animation is the reconstruction, and a still photo
    (speed 0) stays still. -> [N, C, r, r]
    """
    small = F.interpolate(warped_big, size=maps.shape[-2:], mode="area")
    n = small.shape[0]
    small = small + _warp_inv(residual.expand(n, -1, -1, -1), sky_inv, water_inv, horizon, padding)
    return _restore_stats(small, maps.expand(n, -1, -1, -1))


def _round_trip_residual(maps: torch.Tensor, size: int) -> torch.Tensor:
    big = F.interpolate(maps, size=(size, size), mode="bicubic", align_corners=False)
    return maps - F.interpolate(big, size=maps.shape[-2:], mode="area")


def _warp_authors_inv(maps: torch.Tensor, sky_inv: torch.Tensor, water_inv: torch.Tensor,
                      horizon: float, out_size: int, padding: str) -> torch.Tensor:
    size = _authors_size(maps, out_size)
    big = F.interpolate(maps, size=(size, size), mode="bicubic", align_corners=False)  # [N, C, S, S]
    big = _warp_inv(big, sky_inv, water_inv, horizon, padding)
    return _resampled(maps, big, _round_trip_residual(maps, size), sky_inv, water_inv, horizon, padding)


def warp_noise_like_authors(
    maps: torch.Tensor,  # [N, C, r, r]
    sky: Matrices,  # [N, 3, 3] or [3, 3]
    water: Matrices | None,  # [N, 3, 3] or [3, 3], None: sky everywhere
    horizon: float,
    out_size: int,  # output image resolution R: where the warp happens
    padding: str = "reflection",
) -> torch.Tensor:
    """The authors' warp: bicubic up to `out_size`, warp there, area down, restore stats.

    A coarse 4x4 map moved by a fraction of a pixel per frame would be smeared by bilinear
    interpolation at its own resolution, and averaging neighbours shrinks the std the
    generator was trained on (unit-normal noise). Warping at the image resolution moves it
    smoothly, and restoring each sample's mean and std keeps the noise statistics. Unlike the
    authors' code, what the up-and-down round trip loses is warped along and added back
    (`_resampled`), so the identity gives the map back exactly. -> [N, C, r, r]
    """
    assert maps.ndim == 4, f"maps must be [N, C, H, W], got {tuple(maps.shape)}"
    n = maps.shape[0]
    sky_inv = _inverse(sky, n, maps.device)
    water_inv = sky_inv if water is None else _inverse(water, n, maps.device)
    return _warp_authors_inv(maps, sky_inv, water_inv, horizon, out_size, padding)


def animate_noise(
    S_dyn: list[torch.Tensor],  # per level [1, 1, r, r], r = 4, 8, ..., R: S_dyn of frame 0
    motion: Motion,  # one frame's motion at speed x1
    horizon: float,  # horizon height, fraction of the image from the top
    frames: Sequence[int],  # frame indices to produce, e.g. range(start, start + batch)
    speed: float = 1.0,  # multiplies the displacements (see homography.SPEEDS)
    authors_mode: bool = True,  # warp at out_size with stats restored (warp_noise_like_authors)
    out_size: int | None = None,  # output resolution R for authors_mode; default: the finest level
) -> list[torch.Tensor]:
    """S_dyn of `frames`, per level [len(frames), 1, r, r].

    Frame i is frame 0 warped once by H^i (paper 3.1), never a warp of a warped map, so
    interpolation errors do not pile up over a long video and any chunk of frames can be
    rendered on its own. In both modes frame 0 (H^0 = I) is S_dyn itself.
    """
    frames = list(frames)
    if not S_dyn or not frames:
        return [s.new_zeros((0, *s.shape[1:])) for s in S_dyn]
    for s in S_dyn:
        assert s.ndim == 4 and s.shape[0] == 1, f"S_dyn levels must be [1, C, r, r], got {tuple(s.shape)}"
        assert s.device == S_dyn[0].device, "all S_dyn levels must be on one device"
    sky, water = frame_homographies(motion, horizon, frames, speed)  # [T, 3, 3] each, float64
    t, dev = len(frames), S_dyn[0].device
    sky_inv, water_inv = _inverse(sky, t, dev), _inverse(water, t, dev)  # converted once
    if not authors_mode:
        return [_warp_inv(s.expand(t, -1, -1, -1), sky_inv, water_inv, horizon, "reflection") for s in S_dyn]
    # Authors' mode: every level is warped at the same size, so one grid and one grid_sample
    # over the levels stacked as channels serve them all.
    size = max(out_size if out_size is not None else 0, *(max(s.shape[-2:]) for s in S_dyn))
    big = torch.cat([F.interpolate(s, size=(size, size), mode="bicubic", align_corners=False)
                     for s in S_dyn], dim=1)  # [1, L, S, S]
    grid = _sampling_grid((size, size), sky_inv, water_inv, horizon)  # [T, S, S, 2]
    warped = _sample(big.expand(t, -1, -1, -1), grid, "reflection")  # [T, L, S, S]
    out = []
    for k, s in enumerate(S_dyn):
        c = s.shape[1]
        out.append(_resampled(s, warped[:, k * c:(k + 1) * c], _round_trip_residual(s, size), sky_inv, water_inv,
                              horizon, "reflection"))  # [T, C, r, r]
    return out
