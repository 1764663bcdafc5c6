"""FID with pytorch-fid's Inception, loaded from the local weight cache.

pytorch-fid's ``InceptionV3`` fetches its weights through ``torch.hub`` inside its
constructor, which downloads on a cache miss. We build the same network from its parts
(torchvision's Inception3 with pytorch-fid's FID blocks, exactly as
``pytorch_fid.inception.fid_inception_v3`` does) and load the state dict from
`weights.weight_path("inception")` ourselves, so a missing file is a clear error and never a
download or random weights. The forward pass is pytorch-fid's own (resize to 299 bilinear,
scale to [-1, 1], blocks 0-3, pool3), and images are read from folders as its CLI reads
them, so `fid_from_folders(a, b)` reproduces ``python -m pytorch_fid a b``.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np
import torch
import torch.nn as nn
import torchvision
from pytorch_fid import inception as pfid_inception

from . import weights
from .images import to_float_images
from .stats import FeatureStats, frechet_distance

__all__ = [
    "FEATURE_DIM",
    "fid_inception_v3_architecture",
    "InceptionFeatures",
    "image_files",
    "folder_stats",
    "fid_from_folders",
]

PathLike = str | os.PathLike[str]

FEATURE_DIM = 2048  # pool3


def fid_inception_v3_architecture() -> torchvision.models.Inception3:
    """``pytorch_fid.inception.fid_inception_v3`` without its weight download (random init).

    The FID Inception differs from torchvision's: 1008 classes, and blocks whose average
    pools ignore the padding (TF semantics) or, in Mixed_7c, use max pooling.
    """
    net = torchvision.models.inception_v3(num_classes=1008, aux_logits=False, weights=None,
                                          init_weights=False)
    net.Mixed_5b = pfid_inception.FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = pfid_inception.FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = pfid_inception.FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = pfid_inception.FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = pfid_inception.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = pfid_inception.FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = pfid_inception.FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = pfid_inception.FIDInceptionE_1(1280)
    net.Mixed_7c = pfid_inception.FIDInceptionE_2(2048)
    return net


class _LocalInceptionV3(pfid_inception.InceptionV3):
    """pytorch-fid's ``InceptionV3([3], resize_input=True, normalize_input=True,
    use_fid_inception=True)`` with the weights given, not downloaded.

    ``InceptionV3.__init__`` is skipped on purpose (it calls the downloading
    ``fid_inception_v3``); this sets the same attributes and blocks so that the inherited
    ``forward`` runs unchanged.
    """

    def __init__(self, state_dict: dict[str, torch.Tensor]):
        nn.Module.__init__(self)
        self.resize_input = True
        self.normalize_input = True
        self.output_blocks = [3]
        self.last_needed_block = 3
        inc = fid_inception_v3_architecture()
        inc.load_state_dict(state_dict)  # strict: a wrong file fails here, loudly
        self.blocks = nn.ModuleList([
            nn.Sequential(inc.Conv2d_1a_3x3, inc.Conv2d_2a_3x3, inc.Conv2d_2b_3x3,
                          nn.MaxPool2d(kernel_size=3, stride=2)),
            nn.Sequential(inc.Conv2d_3b_1x1, inc.Conv2d_4a_3x3, nn.MaxPool2d(kernel_size=3, stride=2)),
            nn.Sequential(inc.Mixed_5b, inc.Mixed_5c, inc.Mixed_5d, inc.Mixed_6a, inc.Mixed_6b,
                          inc.Mixed_6c, inc.Mixed_6d, inc.Mixed_6e),
            nn.Sequential(inc.Mixed_7a, inc.Mixed_7b, inc.Mixed_7c, nn.AdaptiveAvgPool2d(output_size=(1, 1))),
        ])
        self.requires_grad_(False)


class InceptionFeatures:
    """pool3 features (2048-d) of pytorch-fid's Inception; load once, call per batch."""

    def __init__(self, device: str | torch.device = "cpu", weights_path: PathLike | None = None):
        """`weights_path` overrides the cached ``pt_inception-2015-12-05-6726825d.pth``."""
        self.device = torch.device(device)
        state = weights.load_state_dict("inception", weights_path)
        self.model = _LocalInceptionV3(state).to(self.device).eval()

    @torch.no_grad()
    def features(self, images: np.ndarray | torch.Tensor, batch_size: int = 50) -> np.ndarray:
        """uint8 [N, H, W, 3] or float [N, 3, H, W] in [0, 1] -> float64 [N, 2048].

        Any size: the network resizes to 299 x 299 itself (bilinear, as pytorch-fid).
        """
        x = to_float_images(images)  # [N, 3, H, W]
        out = np.empty((x.shape[0], FEATURE_DIM), dtype=np.float64)
        for i in range(0, x.shape[0], batch_size):
            pool3 = self.model(x[i:i + batch_size].to(self.device))[0]  # [B, 2048, 1, 1]
            out[i:i + pool3.shape[0]] = pool3[:, :, 0, 0].cpu().numpy()
        return out

    def stats(self, images: np.ndarray | torch.Tensor, batch_size: int = 50) -> FeatureStats:
        return FeatureStats.of(self.features(images, batch_size))


def image_files(folder: PathLike) -> list[pathlib.Path]:
    """The images pytorch-fid's CLI reads from `folder` (same extensions, same order)."""
    from pytorch_fid.fid_score import IMAGE_EXTENSIONS

    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no such image folder: {folder}")
    return sorted(f for ext in IMAGE_EXTENSIONS for f in folder.glob(f"*.{ext}"))


def folder_stats(folder: PathLike, extractor: InceptionFeatures, batch_size: int = 50,
                 num_workers: int = 0) -> FeatureStats:
    """Feature statistics of a folder, images read as pytorch-fid's CLI reads them
    (PIL ``.convert("RGB")`` then ``ToTensor``; all images must share one size)."""
    from pytorch_fid.fid_score import ImagePathDataset
    import torchvision.transforms as TF

    files = image_files(folder)
    if len(files) < 2:
        raise ValueError(f"FID needs at least 2 images, found {len(files)} in {folder}")
    loader = torch.utils.data.DataLoader(ImagePathDataset(files, transforms=TF.ToTensor()),
                                         batch_size=batch_size, shuffle=False, drop_last=False,
                                         num_workers=num_workers)
    stats = FeatureStats.empty(FEATURE_DIM)
    for batch in loader:  # [B, 3, H, W] float32 in [0, 1]
        stats.update(extractor.features(batch, batch_size=batch_size))
    return stats


def fid_from_folders(a: PathLike, b: PathLike, batch_size: int = 50,
                     device: str | torch.device = "cpu", weights_path: PathLike | None = None,
                     num_workers: int = 0) -> float:
    """FID between two image folders (or .npz files with ``mu``/``sigma``, as pytorch-fid
    writes them), as ``python -m pytorch_fid a b --dims 2048`` computes it."""
    extractor: InceptionFeatures | None = None  # built only if a folder needs it

    def mu_sigma(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
        nonlocal extractor
        if str(path).endswith(".npz"):
            with np.load(path) as f:
                return f["mu"], f["sigma"]
        if extractor is None:
            extractor = InceptionFeatures(device, weights_path)
        s = folder_stats(path, extractor, batch_size, num_workers)
        return s.mean(), s.cov()

    return frechet_distance(*mu_sigma(a), *mu_sigma(b))
