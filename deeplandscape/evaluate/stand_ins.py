"""Weight files with the real keys and shapes but random values, for tests and benchmarks.

Where the real pretrained files cannot be downloaded (CI, this project's machines), the
tests and `bench/fid_vs_pytorch_fid.py` write these into a cache directory they name, so
every code path (file loading, strict key and shape checks, resizing, the networks,
statistics) runs for real. Values computed with them compare implementations with each
other; they are not comparable to published FIDs. No metric ever falls back to these: a
caller has to write them on purpose.
"""

from __future__ import annotations

import math
import os

import torch
import torchvision
from . import weights
from .fid import fid_inception_v3_architecture

__all__ = ["random_inception_state", "random_backbone_state", "write_stand_in_weights"]

PathLike = str | os.PathLike[str]


def random_inception_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """The FID Inception's keys and shapes with random values that keep activations O(1)
    through ~90 conv + BN layers (He-scaled convs, BN statistics near identity)."""

    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, v in fid_inception_v3_architecture().state_dict().items():
        if key.endswith("num_batches_tracked"):
            state[key] = v
        elif key.endswith("running_var") or key.endswith("bn.weight"):
            state[key] = 0.5 + torch.rand(v.shape, generator=g)
        elif key.endswith("running_mean") or key.endswith("bn.bias"):
            state[key] = 0.1 * torch.randn(v.shape, generator=g)
        elif v.ndim == 4:  # conv [out, in, kh, kw]
            fan_in = v.shape[1] * v.shape[2] * v.shape[3]
            state[key] = torch.randn(v.shape, generator=g) * math.sqrt(2.0 / fan_in)
        else:  # fc (unused by pool3 features)
            state[key] = 0.01 * torch.randn(v.shape, generator=g)
    return state


def random_backbone_state(name: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """torchvision's ``features.*`` tensors of VGG16 ("vgg16") or AlexNet ("alexnet"), random;
    the classifier, unused by LPIPS, is left out to keep the file small."""
    torch.manual_seed(seed)
    if name == "vgg16":
        features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["D"])
    elif name == "alexnet":
        features = torchvision.models.AlexNet(num_classes=1).features
    else:
        raise ValueError(f"no stand-in for {name!r}")
    return {f"features.{k}": v.clone() for k, v in features.state_dict().items()}


def write_stand_in_weights(directory: PathLike, names: tuple[str, ...] = ("inception", "vgg16"),
                           seed: int = 0) -> dict[str, str]:
    """Write stand-ins under their registry file names into `directory`; returns name -> path."""

    os.makedirs(directory, exist_ok=True)
    out = {}
    for name in names:
        path = os.path.join(directory, weights.REGISTRY[name].filename)
        state = random_inception_state(seed) if name == "inception" else random_backbone_state(name, seed)
        torch.save(state, path)
        out[name] = path
    return out
