"""Two cheap measures of generated frames that a trained model should pass (issue 17).

- `ring_contrast`: how much the outermost pixel ring of images differs from the ring a few
  pixels inside, and, as a control, how much two rings further in differ. Photos have
  borders like their insides; a generator whose padding leaks into its output draws a
  coloured frame around every sample, and its border contrast exceeds its interior one.
- `frame_change`: how much videos move on dynamic pixels (sky, water) and on static ones
  (everything else). The paper's point is that the ground stays while the sky moves, so the
  ratio dynamic / static should be well above 1.

Both take uint8 arrays [..., H, W, 3] as `sample.to_uint8` and the video reader give them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class RingContrast:
    edge: float  # mean |outer ring - ring `inset` px inside|, in levels of 255
    interior: float  # the same between the rings 2 x inset and 3 x inset px inside: the images' own texture
    outer_chroma: float  # mean (max - min over RGB) on the outer ring: colour fringes raise it
    inner_chroma: float  # the same on the inner ring
    images: int

    @property
    def border_ratio(self) -> float:
        """edge / interior: about 1 (photos: 0.8) without a frame; a drawn frame raises it."""
        return self.edge / self.interior if self.interior > 0 else float("inf")

    def as_dict(self) -> dict:
        return {**asdict(self), "border_ratio": self.border_ratio}


def _ring(x: np.ndarray, d: int) -> np.ndarray:
    """The pixels of the square ring d px inside the border, [..., 4 * (S - 2d - 4), 3] with
    S = min(H, W): top, bottom, left and right sides without the corners' neighbourhoods, so
    that ring d and ring 0 pair pixel by pixel along the border's normal."""
    h, w = x.shape[-3:-1]
    m = 2  # skip the corners: there two borders meet and the normal is ambiguous
    return np.concatenate([x[..., d, m:w - m, :], x[..., h - 1 - d, m:w - m, :],
                           x[..., m:h - m, d, :], x[..., m:h - m, w - 1 - d, :]], axis=-2)


def ring_contrast(images: np.ndarray, inset: int = 2) -> RingContrast:
    """images uint8 [N, H, W, 3] -> the border measures of `RingContrast`."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be [N, H, W, 3], got {images.shape}")
    if min(images.shape[1:3]) < 6 * inset + 6:
        raise ValueError(f"images of {images.shape[1]}x{images.shape[2]} px are too small for a {inset} px inset")
    x = images.astype(np.float64)
    outer, inner = _ring(x, 0), _ring(x, inset)
    interior = float(np.abs(_ring(x, 2 * inset) - _ring(x, 3 * inset)).mean())
    chroma = lambda r: float((r.max(-1) - r.min(-1)).mean())  # noqa: E731
    return RingContrast(float(np.abs(outer - inner).mean()), interior, chroma(outer), chroma(inner), len(images))


@dataclass(frozen=True)
class FrameChange:
    dynamic: float  # mean |frame_t - frame_0| over t >= 1 on dynamic pixels, levels of 255
    static: float  # the same on static pixels
    ratio: float  # dynamic / static (inf when static is 0)

    def as_dict(self) -> dict:
        return asdict(self)


def frame_change(video: np.ndarray, dynamic: np.ndarray) -> FrameChange:
    """video uint8 [T, H, W, 3] (T >= 2), dynamic bool [H, W] (True on sky and water)."""
    if video.ndim != 4 or len(video) < 2:
        raise ValueError(f"a video must be [T >= 2, H, W, 3], got {video.shape}")
    dynamic = np.asarray(dynamic, bool)
    if dynamic.shape != video.shape[1:3]:
        raise ValueError(f"mask {dynamic.shape} does not match frames {video.shape[1:3]}")
    if dynamic.all() or not dynamic.any():
        raise ValueError("the mask must have both dynamic and static pixels")
    change = np.abs(video[1:].astype(np.float64) - video[:1]).mean(axis=(0, 3))  # [H, W]
    dyn, st = float(change[dynamic].mean()), float(change[~dynamic].mean())
    return FrameChange(dyn, st, dyn / st if st > 0 else float("inf"))


def median_change(changes: list[FrameChange]) -> FrameChange:
    """Medians over videos of each field (the ratio is the median of the videos' ratios)."""
    return FrameChange(*(float(np.median([getattr(c, f) for c in changes])) for f in ("dynamic", "static", "ratio")))
