"""Dynamic-region masks (sky and water) and the horizon, for the S variant of inversion.

A mask is True on dynamic pixels. It comes from a file next to the photo (`X.mask.png`,
255 = dynamic) or from a segmentation network: "ade20k", the authors' CSAIL network
(invert/ade20k.py, the default when its weight files are in the cache), or a TorchScript file.
Either takes [1, 3, H, W] ImageNet-normalised RGB and returns logits [1, C, h, w]; the classes
listed in `invert.dynamic_classes` (ADE20K ids) are dynamic.

The horizon (REFERENCE.md: lowest sky pixel + 10 px) needs to know which dynamic pixels
are sky: with a segmentation model the sky classes say so; with a mask file, sky is the
dynamic region connected to the top edge of the image.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from deeplandscape import storage
from deeplandscape.config import class_ids
from deeplandscape.evaluate import weights
from deeplandscape.invert import ade20k

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


ADE20K = "ade20k"  # invert.segmentation_model naming the built-in CSAIL network (invert/ade20k.py)
NO_SEGMENTATION = "none"


def resolve_segmentation(configured: str) -> str:
    """`invert.segmentation_model` made ready for any process, on the driver: a TorchScript
    path made absolute; "ade20k" (or unset while the ADE20K files are in the weight cache:
    photos without X.mask.png then get automatic masks) as "ade20k:CACHE_DIR", naming this
    process's cache, which Ray workers with another environment or folder would not find.
    Unset without the files, or "none": "none" (no segmentation; final, a worker that has the
    files does not decide otherwise). A named ADE20K whose files are missing fails here."""
    if configured.startswith(ADE20K + ":") or configured == NO_SEGMENTATION:
        return configured
    if configured == ADE20K or (not configured and ade20k.available()):
        if configured:
            ade20k.check_files()  # MissingWeightsError naming the file and the fetch command
        return f"{ADE20K}:{weights.cache_dir()}"
    return storage.absolute(configured) if configured else NO_SEGMENTATION


class Segmenter:
    """A segmentation network, loaded once, giving dynamic and sky masks: "ade20k" (the
    authors' CSAIL network, weights from the cache) or a TorchScript file."""

    def __init__(self, path: str, dynamic_classes: str, sky_classes: str, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        if path == ADE20K or path.startswith(ADE20K + ":"):  # "ade20k:DIR": the cache the driver named
            self.model = ade20k.load_ade20k(self.device, path.partition(":")[2] or None)
        elif not Path(path).is_file():
            raise FileNotFoundError(f"segmentation model {path} does not exist (invert.segmentation_model); "
                                    "give a TorchScript file or 'ade20k', or put X.mask.png masks next to the photos")
        else:
            self.model = torch.jit.load(path, map_location=self.device).eval()
        self.dynamic = class_ids(dynamic_classes)
        self.sky = class_ids(sky_classes)

    @torch.no_grad()
    def __call__(self, rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """RGB uint8 [H, W, 3] -> (dynamic [H, W] bool, sky [H, W] bool)."""
        h, w = rgb.shape[:2]
        x = torch.from_numpy(np.ascontiguousarray(rgb)).to(self.device).permute(2, 0, 1)[None].float() / 255
        mean = torch.tensor(IMAGENET_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=self.device).view(1, 3, 1, 1)
        logits = self.model((x - mean) / std)
        if logits.ndim != 4 or logits.shape[0] != 1:
            raise ValueError(f"segmentation model must return logits [1, C, h, w], got {tuple(logits.shape)}")
        if max(self.dynamic + self.sky) >= logits.shape[1]:
            raise ValueError(f"segmentation model has {logits.shape[1]} classes; class ids "
                             f"{self.dynamic + self.sky} do not all exist (invert.dynamic_classes / sky_classes)")
        labels = F.interpolate(logits.float(), size=(h, w), mode="bilinear", align_corners=False).argmax(1)[0]
        labels = labels.cpu().numpy()
        return np.isin(labels, self.dynamic), np.isin(labels, self.sky)


def sky_from_dynamic(dynamic: np.ndarray) -> np.ndarray:
    """The dynamic region connected to the image's top edge: the sky, without the water."""
    count, labels = cv2.connectedComponents(dynamic.astype(np.uint8), connectivity=4)
    top = set(np.unique(labels[0][dynamic[0]]).tolist())
    return np.isin(labels, sorted(top)) & dynamic if top else np.zeros_like(dynamic)


def horizon_from_sky(sky: np.ndarray, margin: float, default: float = 0.5) -> float:
    """Horizon as a fraction of the height from the top: lowest sky row + margin."""
    rows = np.flatnonzero(sky.any(axis=1))
    if rows.size == 0:
        return default
    h = sky.shape[0]
    return float(min(1.0, (rows[-1] + 1) / h + margin))


def level_masks(dynamic: torch.Tensor, resolution: int) -> list[torch.Tensor]:
    """dynamic [B, 1, R, R] float in {0, 1} -> per level [B, 1, r, r] (r = 4 ... resolution).

    A level's pixel is dynamic when most of the pixels it covers are (area average > 0.5).
    """
    out, r = [], 4
    while r <= resolution:
        out.append((F.interpolate(dynamic, size=(r, r), mode="area") > 0.5).to(dynamic.dtype))
        r *= 2
    return out
