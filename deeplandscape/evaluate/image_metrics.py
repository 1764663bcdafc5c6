"""SSIM and LPIPS on the static part of an image (paper section 5: sky and water masked out).

`mask` is True on the pixels to compare (the static ones). Both metrics first blank the
masked-out pixels to 0 in both images, as the authors' evaluation does
(``lpips(frames * (1 - shift_mask), real * (1 - shift_mask))``), then average the metric's
per-pixel map over the kept pixels only. Blanking makes the value independent of what the
masked-out pixels hold, even near the mask border where an SSIM window or a VGG receptive
field reaches across it; averaging over the kept pixels (the authors averaged the whole
image) keeps the value from shrinking as the masked area grows.

Per-image values are NaN when a mask keeps no pixel; `masked_ssim` / `masked_lpips`
average the others.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

import numpy as np
import torch

from . import weights
from .images import to_float_images, to_mask

__all__ = [
    "SSIM_WINDOW",
    "blank_masked",
    "masked_mean",
    "masked_ssim_per_image",
    "masked_ssim",
    "MaskedLPIPS",
    "lpips_model",
    "masked_lpips",
]

PathLike = str | os.PathLike[str]

SSIM_WINDOW = 11  # Gaussian window, sigma 1.5 (Wang et al. 2004; kornia's fixed sigma)
LPIPS_BACKBONES = {"vgg": "vgg16", "alex": "alexnet"}  # lpips net -> its backbone in the weight cache
_BACKBONE_WEIGHTS = LPIPS_BACKBONES


def blank_masked(x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """x [N, C, H, W] with the pixels where keep [N, 1, H, W] is False set to 0."""
    return x * keep.to(x.dtype)


def masked_mean(values: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Per-image mean of values [N, C, H, W] over channels and kept pixels -> float64 [N]."""
    v = values.to(torch.float64).mean(dim=1, keepdim=True)  # [N, 1, H, W]
    k = keep.to(torch.float64)
    count = k.sum(dim=(1, 2, 3))
    return (v * k).sum(dim=(1, 2, 3)) / count  # NaN where nothing is kept


def _prepare(a, b, mask) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    a, b = to_float_images(a), to_float_images(b)  # [N, 3, H, W]
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {tuple(a.shape)} vs {tuple(b.shape)}")
    n, _, h, w = a.shape
    keep = to_mask(mask, n, h, w).to(a.device)  # [N, 1, H, W] bool
    return blank_masked(a, keep), blank_masked(b, keep), keep


def masked_ssim_per_image(a, b, mask) -> np.ndarray:
    """SSIM of each pair over its kept pixels -> float64 [N].

    kornia's SSIM map: 11-tap Gaussian window (sigma 1.5), data range 1, reflect padding,
    eps 0 (kornia's default eps=1e-12 biases dark flat regions below 1).
    """
    import kornia

    a, b, keep = _prepare(a, b, mask)
    ssim_map = kornia.metrics.ssim(a, b, SSIM_WINDOW, max_val=1.0, eps=0.0)  # [N, 3, H, W]
    return masked_mean(ssim_map, keep).numpy()


def masked_ssim(a, b, mask) -> float:
    """Mean SSIM over pairs, each averaged over its static pixels (mask True)."""
    return float(np.nanmean(masked_ssim_per_image(a, b, mask)))


class MaskedLPIPS:
    """LPIPS v0.1 (spatial map) averaged over kept pixels; load once, call per batch.

    The linear layers ship inside the lpips package; the backbone is the torchvision
    ImageNet file from the weight cache (`weights.weight_path("vgg16" / "alexnet")`):
    lpips would otherwise download it through torchvision.
    """

    def __init__(self, net: str = "vgg", device: str | torch.device = "cpu",
                 weights_path: PathLike | None = None):
        import lpips

        if net not in _BACKBONE_WEIGHTS:
            raise ValueError(f"net must be one of {sorted(_BACKBONE_WEIGHTS)}, got {net!r}")
        self.net = net
        self.device = torch.device(device)
        backbone = weights.load_state_dict(_BACKBONE_WEIGHTS[net], weights_path)
        with warnings.catch_warnings():
            # lpips builds its (random, pnet_rand=True) trunk with torchvision's deprecated
            # pretrained= argument; we overwrite every trunk weight just below.
            warnings.filterwarnings("ignore", message=".*(pretrained|weights).*", category=UserWarning)
            model = lpips.LPIPS(pretrained=True, net=net, version="0.1", spatial=True,
                                pnet_rand=True, verbose=False)
        _load_backbone(model.net, backbone, _BACKBONE_WEIGHTS[net])
        self.model = model.to(self.device).eval().requires_grad_(False)

    @torch.no_grad()
    def per_image(self, a, b, mask) -> np.ndarray:
        """LPIPS of each pair over its kept pixels -> float64 [N]."""
        a, b, keep = _prepare(a, b, mask)
        dist = self.model(a.to(self.device), b.to(self.device), normalize=True)  # [N, 1, H, W]
        return masked_mean(dist.cpu(), keep).numpy()

    def __call__(self, a, b, mask) -> float:
        return float(np.nanmean(self.per_image(a, b, mask)))


def _load_backbone(trunk: torch.nn.Module, tv_state: dict[str, torch.Tensor], name: str) -> None:
    """Copy torchvision's ``features.<i>.*`` tensors into lpips' ``slice<k>.<i>.*``.

    lpips' slices keep torchvision's layer index i as the module name, so the layer index is
    the key. torchvision's classifier tensors are unused.
    """
    state = {}
    for key in trunk.state_dict():
        _slice, idx, param = key.split(".")  # "slice2.5.weight"
        src = f"features.{idx}.{param}"
        if src not in tv_state:
            raise KeyError(f"{name} weights lack {src!r}: not a torchvision {name} state dict")
        state[key] = tv_state[src]
    trunk.load_state_dict(state)  # strict, shapes checked


@functools.lru_cache(maxsize=2)
def _cached_lpips(net: str, device: str, path: str) -> MaskedLPIPS:
    return MaskedLPIPS(net, device, path)


def lpips_model(net: str = "vgg", device: str | torch.device = "cpu",
                weights_path: PathLike | None = None) -> MaskedLPIPS:
    """A `MaskedLPIPS` built once per (net, device, backbone file) and then reused."""
    if net not in _BACKBONE_WEIGHTS:
        raise ValueError(f"net must be one of {sorted(_BACKBONE_WEIGHTS)}, got {net!r}")
    # Resolved before the cache lookup, so the key follows $DEEPLANDSCAPE_WEIGHTS / $TORCH_HOME.
    path = Path(weights_path) if weights_path is not None else weights.weight_path(_BACKBONE_WEIGHTS[net])
    return _cached_lpips(net, str(torch.device(device)), str(path.resolve()))


def masked_lpips(a, b, mask, net: str = "vgg", device: str | torch.device = "cpu") -> float:
    """Mean LPIPS over pairs, each averaged over its static pixels (mask True)."""
    return lpips_model(net, device)(a, b, mask)


class LPIPSLoss(torch.nn.Module):
    """Differentiable LPIPS spatial map [B, 1, H, W] of images in [-1, 1] (the inversion's and
    the SR pairs' perceptual term; the backbone comes from the weight cache, never a download)."""

    def __init__(self, net: str, device: torch.device):
        super().__init__()
        self.model = lpips_model(net, device).model

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return self.model(a, b, normalize=False)
