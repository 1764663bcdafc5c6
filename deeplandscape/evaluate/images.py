"""The two image layouts the metrics accept, and static-pixel masks.

Images are either ``uint8`` ``[N, H, W, 3]`` (what `deeplandscape.video` and PIL give) or
float ``[N, 3, H, W]`` in [0, 1] (what networks give after ``x / 2 + 0.5``). Both become
float32 ``[N, 3, H, W]`` in [0, 1], exactly as torchvision's ``ToTensor`` does for uint8.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["to_float_images", "to_mask"]


def to_float_images(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [N, H, W, 3] or float [N, 3, H, W] in [0, 1] -> float32 [N, 3, H, W] in [0, 1]."""
    x = torch.as_tensor(images)
    if x.ndim != 4:
        raise ValueError(f"expected a batch of images [N, H, W, 3] or [N, 3, H, W], got {tuple(x.shape)}")
    if x.dtype == torch.uint8:
        if x.shape[-1] != 3:
            raise ValueError(f"uint8 images must be [N, H, W, 3], got {tuple(x.shape)}")
        return x.permute(0, 3, 1, 2).to(torch.float32).div(255)  # as ToTensor
    if not x.is_floating_point():
        raise ValueError(f"images must be uint8 or float, got {x.dtype}")
    if x.shape[1] != 3:
        raise ValueError(f"float images must be [N, 3, H, W], got {tuple(x.shape)}")
    if x.numel() and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
        # Generator outputs are in [-1, 1]: convert with x / 2 + 0.5 first.
        raise ValueError(f"float images must be in [0, 1], got [{float(x.min()):.3g}, {float(x.max()):.3g}]")
    return x.to(torch.float32)


def to_mask(mask: np.ndarray | torch.Tensor, n: int, h: int, w: int) -> torch.Tensor:
    """[H, W], [N, H, W] or [N, 1, H, W], bool or {0, 1} -> bool [N, 1, H, W]."""
    m = torch.as_tensor(mask)
    if m.ndim == 2:
        m = m[None, None]
    elif m.ndim == 3:
        m = m[:, None]
    if m.ndim != 4 or m.shape[1] != 1 or m.shape[2:] != (h, w) or m.shape[0] not in (1, n):
        raise ValueError(f"mask {tuple(torch.as_tensor(mask).shape)} does not fit images [{n}, 3, {h}, {w}]")
    if m.dtype != torch.bool:
        if not ((m == 0) | (m == 1)).all():
            raise ValueError("a mask holds booleans or 0/1 values")
        m = m != 0
    return m.expand(n, 1, h, w)
