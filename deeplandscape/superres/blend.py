"""The guided-filter blend of paper 3.2 ("Super Resolution", Fig. 5).

"After obtaining the super-resolved video, we transfer dynamic parts (sky and water) from it
to the final result. The static parts are obtained by running the guided filter on the
super-resolved frames while using the input high-res image as a guide."

The guided filter (He et al. 2010) fits, in every window, the SR frame p as a linear function
of the guide I (the hi-res photo): q = a I + b. Where p is a blurred and recoloured version of
I, q takes I's edges and texture with p's colour and lighting, so a lighting change made by
the animation survives while the photo's detail comes back. The filter is kornia's
`guided_blur` (colour guidance: each output channel is fitted to all three guide channels)
with its "fast" subsampling (He & Sun 2015) at large sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from kornia.filters import guided_blur

REFERENCE_SIZE = 1024  # guided_radius and guided_subsample are given at this output size


def guided_filter_params(size: int, radius: int, subsample: int) -> tuple[int, int]:
    """(radius, subsample) at an output of side `size`, scaled from REFERENCE_SIZE."""
    scale = size / REFERENCE_SIZE
    return max(1, round(radius * scale)), max(1, round(subsample * scale))


def guided_blend(
    sr: torch.Tensor,  # [T, 3, H, W] super-resolved frames in [-1, 1]
    photo: torch.Tensor,  # [3, H, W] or [T, 3, H, W] the hi-res input photo in [-1, 1]: the guide
    dynamic: torch.Tensor,  # [1, H, W] or [T, 1, H, W] in [0, 1]: 1 on sky and water
    radius: int = 32,  # window radius in pixels at this size (see guided_filter_params)
    eps: float = 1e-4,  # regulariser in squared [0, 1] units: smaller keeps more of the guide's detail
    subsample: int = 1,  # fast guided filter: statistics on a grid this many times coarser
) -> torch.Tensor:
    """Dynamic parts from `sr`, static parts from the guided filter of `sr` guided by `photo`.
    Returns [T, 3, H, W] in [-1, 1]."""
    if sr.ndim != 4 or sr.shape[1] != 3:
        raise ValueError(f"sr frames must be [T, 3, H, W], got {tuple(sr.shape)}")
    size = sr.shape[-2:]
    if photo.shape[-3:] != (3, *size):
        raise ValueError(f"the photo must be [3, {size[0]}, {size[1]}] like the frames, got {tuple(photo.shape)}")
    if dynamic.shape[-3:] != (1, *size):
        raise ValueError(f"the dynamic mask must be [1, {size[0]}, {size[1]}] like the frames, "
                         f"got {tuple(dynamic.shape)}")
    t = sr.shape[0]
    guide = ((photo.float() + 1) / 2).expand(t, 3, *size)  # [T, 3, H, W] in [0, 1]
    p = (sr.float() + 1) / 2
    # The filter's window may not exceed the image (reflect padding); kornia wants an odd size.
    radius = max(1, min(radius, (min(size) - 1) // 2))
    static = guided_blur(guide, p, 2 * radius + 1, eps, border_type="reflect", subsample=subsample, separable=True)
    m = dynamic.float().expand(t, 1, *size)
    out = m * p + (1 - m) * static
    return out.mul(2).sub(1).clamp(-1, 1)


def resize_to(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[N, C, h, w] -> [N, C, *size]: antialiased bilinear when shrinking, bicubic when growing."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[-2]
    return F.interpolate(x.float(), size=size, mode="bilinear" if shrink else "bicubic", align_corners=False,
                         antialias=shrink)
