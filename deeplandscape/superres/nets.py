"""ESRGAN's networks and losses (Wang et al., ECCV-W 2018), which the paper's SR uses (3.2).

    RRDBNet        the x4 generator: conv, a trunk of Residual-in-Residual Dense Blocks, two
                   nearest-neighbour x2 upsamplings each followed by a conv, two output convs
    Discriminator  ESRGAN's VGG-style discriminator, for square hi-res patches
    VGGFeatures    the perceptual loss's feature extractor (from the weight cache)

Parameter names follow ESRGAN's released RRDBNet (`conv_first`, `RRDB_trunk.N.RDB1.conv1`,
`trunk_conv`, `upconv1`, `upconv2`, `HRconv`, `conv_last`), so its published state dicts
(RRDB_ESRGAN_x4.pth, RRDB_PSNR_x4.pth) load as they are (`superres.init`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from deeplandscape.evaluate import weights

SCALE = 4  # ESRGAN x4: 256 px frames -> 1024 px (paper Fig. 5)


def _lrelu() -> nn.LeakyReLU:
    return nn.LeakyReLU(0.2, inplace=True)


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the block input and every earlier output; residual x 0.2."""

    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.conv1 = nn.Conv2d(nf, gc, 3, 1, 1)
        self.conv2 = nn.Conv2d(nf + gc, gc, 3, 1, 1)
        self.conv3 = nn.Conv2d(nf + 2 * gc, gc, 3, 1, 1)
        self.conv4 = nn.Conv2d(nf + 3 * gc, gc, 3, 1, 1)
        self.conv5 = nn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)
        self.lrelu = _lrelu()
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
            # ESRGAN: Kaiming init scaled by 0.1, so the deep residual trunk starts near identity.
            nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.lrelu(self.conv1(x))
        x2 = self.lrelu(self.conv2(torch.cat((x, x1), 1)))
        x3 = self.lrelu(self.conv3(torch.cat((x, x1, x2), 1)))
        x4 = self.lrelu(self.conv4(torch.cat((x, x1, x2, x3), 1)))
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Residual in Residual Dense Block: three dense blocks, residual x 0.2."""

    def __init__(self, nf: int, gc: int):
        super().__init__()
        self.RDB1 = ResidualDenseBlock(nf, gc)
        self.RDB2 = ResidualDenseBlock(nf, gc)
        self.RDB3 = ResidualDenseBlock(nf, gc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.RDB3(self.RDB2(self.RDB1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """x4 super-resolution: [B, 3, h, w] in [-1, 1] -> [B, 3, 4h, 4w] (not clamped).

    ESRGAN works on [0, 1] images; the mapping to and from [-1, 1] is inside, so a released
    ESRGAN state dict sees the inputs it was trained on.
    """

    def __init__(self, nf: int = 64, nb: int = 23, gc: int = 32):
        super().__init__()
        self.nf, self.nb, self.gc = nf, nb, gc
        self.conv_first = nn.Conv2d(3, nf, 3, 1, 1)
        self.RRDB_trunk = nn.Sequential(*[RRDB(nf, gc) for _ in range(nb)])
        self.trunk_conv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upconv1 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.upconv2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.HRconv = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, 3, 3, 1, 1)
        self.lrelu = _lrelu()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.ndim == 4 and x.shape[1] == 3, f"expected [B, 3, h, w], got {tuple(x.shape)}"
        fea = self.conv_first((x + 1) / 2)  # [B, nf, h, w]
        fea = fea + self.trunk_conv(self.RRDB_trunk(fea))
        fea = self.lrelu(self.upconv1(F.interpolate(fea, scale_factor=2, mode="nearest")))  # [B, nf, 2h, 2w]
        fea = self.lrelu(self.upconv2(F.interpolate(fea, scale_factor=2, mode="nearest")))  # [B, nf, 4h, 4w]
        out = self.conv_last(self.lrelu(self.HRconv(fea)))
        return out * 2 - 1  # [B, 3, 4h, 4w]


class Discriminator(nn.Module):
    """ESRGAN's VGG-style D on [B, 3, P, P] hi-res patches (P a multiple of 32) -> logits [B].

    Five stages, each a 3x3 conv and a strided 4x4 conv (BatchNorm after all but the first
    conv), channels nf, 2nf, 4nf, 8nf, 8nf; then two linear layers (100 hidden units).
    """

    def __init__(self, patch: int, nf: int = 64):
        super().__init__()
        if patch % 32:
            raise ValueError(f"the discriminator needs a hi-res patch side that is a multiple of 32, got {patch}")
        layers: list[nn.Module] = []
        c_in = 3
        for i, c in enumerate((nf, 2 * nf, 4 * nf, 8 * nf, 8 * nf)):
            layers += [nn.Conv2d(c_in, c, 3, 1, 1, bias=i == 0)]
            layers += [nn.BatchNorm2d(c)] if i else []
            layers += [_lrelu(), nn.Conv2d(c, c, 4, 2, 1, bias=False), nn.BatchNorm2d(c), _lrelu()]
            c_in = c
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Linear(8 * nf * (patch // 32) ** 2, 100), _lrelu(), nn.Linear(100, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))[:, 0]


class VGGFeatures(nn.Module):
    """VGG16 features up to conv5_3, before its ReLU (ESRGAN's choice of layer, on VGG16: the
    ImageNet network already in the weight cache for LPIPS). Inputs in [-1, 1]."""

    def __init__(self):
        super().__init__()
        import torchvision


        vgg = torchvision.models.vgg16(weights=None)
        vgg.load_state_dict(weights.load_state_dict("vgg16"))  # says what to fetch when missing
        self.features = vgg.features[:29].eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(((x + 1) / 2 - self.mean) / self.std)


# --- losses, named after the maths (relativistic average GAN, ESRGAN eq. 1-2) ----------------
def d_ragan_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """D's loss: real images should look more real than the average fake, and vice versa."""
    return 0.5 * (F.softplus(-(real_logits - fake_logits.mean())).mean()
                  + F.softplus(fake_logits - real_logits.mean()).mean())


def g_ragan_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """G's loss: the symmetric one, with real and fake swapped (both terms carry gradients)."""
    return 0.5 * (F.softplus(real_logits - fake_logits.mean()).mean()
                  + F.softplus(-(fake_logits - real_logits.mean())).mean())


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean PSNR (dB) of images in [-1, 1] (peak-to-peak 2)."""
    mse = (a.float() - b.float()).pow(2).flatten(1).mean(dim=1).clamp_min(1e-10)
    return (10 * torch.log10(4.0 / mse)).mean()
