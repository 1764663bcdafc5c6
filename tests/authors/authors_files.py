"""Files in the authors' layouts, written by the tests (random values, their key names and shapes).

`their_generator_state` is the state dict of their `model.StyledGenerator` (two_noises=True):
nine levels, 4 to 1024 px, `weight_orig` for every equalised weight, the fused upsample's
`(in, out, 3, 3)` kernel from 128 px up, blur kernels as buffers. `their_forward` computes their
generator's image from such a dict, written from their definitions (equalised lr with
sqrt(2 / fan_in) everywhere, the fused transposed convolution, blur, noise, LeakyReLU, AdaIN),
independently of deeplandscape/authors/generator.py.
"""

from __future__ import annotations

import importlib
import math
import shutil
import sys

import torch
import torch.nn.functional as F

PAPER_CHANNELS = (512, 512, 512, 512, 256, 128, 64, 32, 16)  # their 4..1024 px levels
NARROW_CHANNELS = (32, 32, 32, 32, 16, 8, 4, 2, 1)  # the same rule, min(32, 1024 / r)
FIRST_FUSED = 5  # 128 px
BLUR = (torch.tensor([1.0, 2.0, 1.0])[:, None] * torch.tensor([1.0, 2.0, 1.0])[None, :] / 16)


def their_generator_state(channels=PAPER_CHANNELS, code_dim: int = 512, n_mlp: int = 8, seed: int = 0,
                          two_noises: bool = True) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    sd: dict[str, torch.Tensor] = {}
    for n, c in enumerate(channels):
        p = f"generator.progression.{n}."
        if n == 0:
            sd[p + "conv1.input"] = r(1, c, 4, 4)
        elif n >= FIRST_FUSED:
            sd[p + "conv1.0.weight"] = r(channels[n - 1], c, 3, 3)
            sd[p + "conv1.0.bias"] = r(c) * 0.1
            sd[p + "conv1.1.weight"] = BLUR.expand(c, 1, 3, 3).clone()
            sd[p + "conv1.1.weight_flip"] = BLUR.expand(c, 1, 3, 3).clone()
        else:
            sd[p + "conv1.1.conv.weight_orig"] = r(c, channels[n - 1], 3, 3)
            sd[p + "conv1.1.conv.bias"] = r(c) * 0.1
            sd[p + "conv1.2.weight"] = BLUR.expand(c, 1, 3, 3).clone()
            sd[p + "conv1.2.weight_flip"] = BLUR.expand(c, 1, 3, 3).clone()
        for j in (1, 2):
            sd[p + f"noise{j}.weight_orig"] = r(1, c, 1, 1)
            if two_noises:
                sd[p + f"noise{j}2.weight_orig"] = r(1, c, 1, 1)
            sd[p + f"adain{j}.style.linear.weight_orig"] = r(2 * c, code_dim)
            sd[p + f"adain{j}.style.linear.bias"] = torch.cat([1 + 0.1 * r(c), 0.1 * r(c)])
        sd[p + "conv2.conv.weight_orig"] = r(c, c, 3, 3)
        sd[p + "conv2.conv.bias"] = r(c) * 0.1
        sd[f"generator.to_rgb.{n}.conv.weight_orig"] = r(3, c, 1, 1)
        sd[f"generator.to_rgb.{n}.conv.bias"] = r(3) * 0.1
    for i in range(n_mlp):
        sd[f"style.{2 * i + 1}.linear.weight_orig"] = r(code_dim, code_dim)
        sd[f"style.{2 * i + 1}.linear.bias"] = r(code_dim) * 0.1
    return sd


def their_checkpoint(channels=NARROW_CHANNELS, code_dim: int = 32, n_mlp: int = 2, resolution: int = 256,
                     seed: int = 0) -> dict:
    """A `.model` dict as their train.py saves it (the discriminators and Adam states small)."""
    return {
        "generator": their_generator_state(channels, code_dim, n_mlp, seed),
        "g_running": their_generator_state(channels, code_dim, n_mlp, seed + 1),
        "discriminator": {"progression.0.conv.0.conv.weight_orig": torch.randn(4, 4, 3, 3)},
        "n_frames_discriminator": {"progression.0.conv.0.conv.weight_orig": torch.randn(4, 8, 3, 3)},
        "g_optimizer": {"state": {}, "param_groups": [{"lr": 0.001, "betas": (0.0, 0.99), "params": [0]},
                                                       {"lr": 1e-5, "mult": 0.01, "params": [1]}]},
        "d_optimizer": {"state": {}, "param_groups": []}, "nfd_optimizer": {"state": {}, "param_groups": []},
        "alpha": 0.0,  # their loop never writes alpha back: released files may say 0
        "step": int(math.log2(resolution)) - 2, "resolution": resolution, "used_samples": 123, "iteration": 475000,
    }


# --- their forward pass, from their definitions --------------------------------------------------
def equal(w: torch.Tensor) -> torch.Tensor:
    """Their EqualLR: weight_orig * sqrt(2 / fan_in), fan_in = size(1) * kernel size."""
    return w * math.sqrt(2 / (w.size(1) * w[0][0].numel()))


def blur(x: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x, BLUR.expand(x.shape[1], 1, 3, 3).to(x), padding=1, groups=x.shape[1])


def their_mapping(sd: dict, z: torch.Tensor) -> torch.Tensor:
    x = z / torch.sqrt(z.pow(2).mean(dim=1, keepdim=True) + 1e-8)
    for i in sorted(int(k.split(".")[1]) for k in sd if k.startswith("style.") and k.endswith("weight_orig")):
        x = F.leaky_relu(F.linear(x, equal(sd[f"style.{i}.linear.weight_orig"]), sd[f"style.{i}.linear.bias"]), 0.2)
    return x


def _noise_adain(sd: dict, p: str, j: int, x, w, noise_st, noise_dyn):
    x = x + equal(sd[p + f"noise{j}.weight_orig"]) * noise_st
    x = x + equal(sd[p + f"noise{j}2.weight_orig"]) * noise_dyn
    x = F.leaky_relu(x, 0.2)
    style = F.linear(w, equal(sd[p + f"adain{j}.style.linear.weight_orig"]), sd[p + f"adain{j}.style.linear.bias"])
    gamma, beta = style[:, :, None, None].chunk(2, 1)
    return gamma * F.instance_norm(x, eps=1e-5) + beta


def their_level(sd: dict, n: int, x, w, noise_st, noise_dyn):
    """One StyledConvBlock of theirs (level n) on x (None at level 0)."""
    p = f"generator.progression.{n}."
    if n == 0:
        out = sd[p + "conv1.input"].repeat(w.shape[0], 1, 1, 1)
    elif p + "conv1.0.weight" in sd:  # FusedUpsample: padded kernel, the four shifts averaged
        weight = sd[p + "conv1.0.weight"]
        k = F.pad(weight * math.sqrt(2 / (weight.size(0) * 9)), [1, 1, 1, 1])
        k = (k[:, :, 1:, 1:] + k[:, :, :-1, 1:] + k[:, :, 1:, :-1] + k[:, :, :-1, :-1]) / 4
        out = blur(F.conv_transpose2d(x, k, sd[p + "conv1.0.bias"], stride=2, padding=1))
    else:
        out = F.interpolate(x, scale_factor=2, mode="nearest")
        out = blur(F.conv2d(out, equal(sd[p + "conv1.1.conv.weight_orig"]), sd[p + "conv1.1.conv.bias"], padding=1))
    out = _noise_adain(sd, p, 1, out, w, noise_st, noise_dyn)
    out = F.conv2d(out, equal(sd[p + "conv2.conv.weight_orig"]), sd[p + "conv2.conv.bias"], padding=1)
    return _noise_adain(sd, p, 2, out, w, noise_st, noise_dyn)


def their_to_rgb(sd: dict, n: int, x):
    return F.conv2d(x, equal(sd[f"generator.to_rgb.{n}.conv.weight_orig"]), sd[f"generator.to_rgb.{n}.conv.bias"])


def their_forward(sd: dict, z: torch.Tensor, noise_st: list, noise_dyn: list, step: int) -> torch.Tensor:
    """Their StyledGenerator(z, noise, step, alpha=-1): one style for every level."""
    w = their_mapping(sd, z)
    x = None
    for n in range(step + 1):
        x = their_level(sd, n, x, w, noise_st[n], noise_dyn[n])
    return their_to_rgb(sd, step, x)


# --- their encoder, as a module of a package that the reader does not have ------------------------
THEIR_ENCODERS = '''
import torch
import torch.nn.functional as F
import torchvision
from torch import nn


class ImageNetRenormalize(nn.Module):
    def __init__(self):
        super().__init__()
        self.mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)  # attributes, not buffers
        self.std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def forward(self, x):
        return ((x + 1) / 2 - self.mean) / self.std


class ResNetEncoder(nn.Module):
    def __init__(self, num_levels, w_size, bottleneck, resnet="resnet18"):
        super().__init__()
        self.num_levels = num_levels
        self.renorm = ImageNetRenormalize()
        self.backbone = getattr(torchvision.models, resnet)(weights=None)
        feats = sum(getattr(self.backbone, n)[-1].bn2.num_features for n in ("layer1", "layer3", "layer4"))
        self.backbone.fc = nn.Sequential(nn.Linear(feats, bottleneck), nn.LayerNorm(bottleneck), nn.LeakyReLU(0.2),
                                         nn.Linear(bottleneck, w_size * num_levels))

    def forward(self, x):
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(self.renorm(x)))))
        x = b.layer1(x)
        f1 = F.adaptive_avg_pool2d(x, 1)
        x = b.layer3(b.layer2(x))
        f3 = F.adaptive_avg_pool2d(x, 1)
        f4 = b.avgpool(b.layer4(x))
        out = b.fc(torch.cat([f1, f3, f4], dim=1).flatten(1))
        return torch.stack(out.chunk(self.num_levels, dim=1), dim=1)


class DenseResBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.impl = nn.Sequential(nn.Linear(c, c), nn.LayerNorm(c, elementwise_affine=False), nn.LeakyReLU(0.2),
                                  nn.Linear(c, c))

    def forward(self, x):
        return x + self.impl(x)


class MLPApproximator(nn.Module):
    def __init__(self, w_size, dz_size, depth):
        super().__init__()
        inner = w_size + dz_size
        self.impl = nn.Sequential(*[DenseResBlock(inner) for _ in range(depth)])
        self.out = nn.Linear(inner, w_size)

    def forward(self, x):
        return self.out(self.impl(x))
'''


def their_code(folder):
    """Their `inference.encoders` module, written under `folder` and imported."""
    package = folder / "inference"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text("")
    (package / "encoders.py").write_text(THEIR_ENCODERS)
    sys.path.insert(0, str(folder))
    try:
        return importlib.import_module("inference.encoders")
    finally:
        sys.path.remove(str(folder))


def their_lighting(folder, w_size: int, dz_size: int = 4, depth: int = 3, seed: int = 0):
    """Their MLPApproximator (A), random weights."""
    torch.manual_seed(seed)
    return their_code(folder).MLPApproximator(w_size, dz_size, depth).eval()


def their_encoder(folder, levels: int, w_size: int, hidden: int = 64, seed: int = 0):
    """Their ResNetEncoder (ResNet-18 backbone for speed) as `inference.encoders` defines it."""
    encoders = their_code(folder)
    torch.manual_seed(seed)
    model = encoders.ResNetEncoder(levels, w_size, hidden).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return model


def forget_their_code(folder) -> None:
    """Remove their package: what is left is the pickled file's data only."""
    for name in [n for n in sys.modules if n == "inference" or n.startswith("inference.")]:
        del sys.modules[name]
    shutil.rmtree(folder / "inference", ignore_errors=True)
