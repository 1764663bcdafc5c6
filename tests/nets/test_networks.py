"""Shapes through G and both discriminators at every level and alpha; fade-in identities."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deeplandscape.config import load_config
from deeplandscape.nets.discriminator import Discriminator, downsample
from deeplandscape.nets.generator import Generator, level_of
from deeplandscape.train.latents import generate, sample_latents

RESOLUTIONS = [8, 16, 32]


@pytest.fixture(scope="module")
def model_cfg():
    return load_config("tiny").model


@pytest.fixture(scope="module")
def G(model_cfg):
    torch.manual_seed(0)
    G = Generator(model_cfg)
    with torch.no_grad():  # noise scales start at zero; make the noise inputs matter
        for name, p in G.named_parameters():
            if name.endswith(".scale"):
                p.normal_()
    return G


def _inputs(G, batch, res, seed=0):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, G.cfg.z_dim, generator=gen)
    return G.ws_from_z(z), G.make_noise(batch, res, gen), G.make_noise(batch, res, gen)


@pytest.mark.parametrize("res", RESOLUTIONS)
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_generator_shapes(G, res, alpha):
    ws, S_st, S_dyn = _inputs(G, 3, res)
    img = G(ws, S_st, S_dyn, res, alpha)
    assert img.shape == (3, 3, res, res) and img.dtype == torch.float32
    assert torch.isfinite(img).all()


@pytest.mark.parametrize("res", [16, 32])
def test_generator_alpha_zero_is_upsampled_lower_level(G, res):
    """Fade-in starts from the previous resolution's output, nearest-upsampled."""
    ws, S_st, S_dyn = _inputs(G, 2, res)
    low = G(ws, S_st, S_dyn, res // 2, 1.0)
    faded = G(ws, S_st, S_dyn, res, 0.0)
    torch.testing.assert_close(faded, F.interpolate(low, scale_factor=2, mode="nearest"))


def test_static_and_dynamic_noise_both_reach_the_image(G):
    ws, S_st, S_dyn = _inputs(G, 2, 32)
    base = G(ws, S_st, S_dyn, 32)
    other = G.make_noise(2, 32, torch.Generator().manual_seed(9))
    assert (G(ws, other, S_dyn, 32) - base).abs().mean() > 1e-3
    assert (G(ws, S_st, other, 32) - base).abs().mean() > 1e-3


def test_noise_scales_start_at_zero(model_cfg):
    G = Generator(model_cfg)
    ws, S_st, S_dyn = _inputs(G, 2, 16)
    torch.testing.assert_close(G(ws, S_st, S_dyn, 16), G(ws, [s * 0 for s in S_st], [s * 0 for s in S_dyn], 16))


def test_single_noise_ablation_has_no_dynamic_scales(model_cfg):
    cfg = load_config("tiny", {"model.separate_noise": "false"}).model
    G = Generator(cfg)
    assert not any("noise_dyn" in n for n, _ in G.named_parameters())
    ws, S_st, _ = _inputs(G, 2, 16)
    assert G(ws, S_st, None, 16).shape == (2, 3, 16, 16)


@pytest.mark.parametrize("variant", ["static", "paper", "early_fusion"])
@pytest.mark.parametrize("res", RESOLUTIONS)
@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_discriminator_shapes(variant, res, alpha):
    cfg = load_config("tiny", {"model.pair_d": "paper" if variant == "static" else variant}).model
    D = Discriminator(cfg, pair=variant != "static")
    shape = (4, 3, res, res) if variant == "static" else (4, 2, 3, res, res)
    out = D(torch.randn(shape), res, alpha)
    assert out.shape == (4, 1) and torch.isfinite(out).all()


@pytest.mark.parametrize("variant", ["static", "paper", "early_fusion"])
@pytest.mark.parametrize("res", [16, 32])
def test_discriminator_alpha_zero_is_the_previous_resolution(variant, res):
    """Fade-in continuity, every variant: D(x, r, 0) == D(down(x), r/2, 1), to float error."""
    cfg = load_config("tiny", {"model.pair_d": "paper" if variant == "static" else variant}).model
    torch.manual_seed(0)
    D = Discriminator(cfg, pair=variant != "static")
    x = torch.randn((4, 3, res, res) if variant == "static" else (4, 2, 3, res, res))
    torch.testing.assert_close(D(x, res, 0.0), D(downsample(x), res // 2, 1.0))
    # ... and alpha moves it away from there: the new level is not ignored
    assert not torch.allclose(D(x, res, 0.5), D(x, res, 0.0))


def test_legacy_paper_pair_fade_still_jumps():
    """Runs made before model.pair_fade keep their fade (a jump at alpha 0), as they were trained."""
    cfg = load_config("tiny", {"model.pair_d": "paper", "model.pair_fade": "legacy"}).model
    torch.manual_seed(0)
    D = Discriminator(cfg, pair=True)
    x = torch.randn(4, 2, 3, 32, 32)
    gap = (D(x, 32, 0.0) - D(downsample(x), 16, 1.0)).abs().max()
    assert gap > 1e-3, gap
    h = D._input(downsample(x), level_of(16))  # the legacy skip: from-RGB and a fuse at 16 px
    for n in range(level_of(16), -1, -1):
        h = D.blocks[n](h)
    torch.testing.assert_close(D(x, 32, 0.0), h)


def test_he_gain_keeps_the_mapping_signal_and_old_configs_read_the_old_gain():
    """StyleGAN v1's gain sqrt(2): w keeps an rms near z's through M at initialisation; without
    it (runs made before model.he_gain) each layer shrinks the signal, and saved configs that
    lack the field read it as false."""
    from deeplandscape.config import Config

    cfg = load_config("tiny")
    assert cfg.model.he_gain
    rms = {}
    for gain in (True, False):
        torch.manual_seed(0)
        M = Generator(load_config("tiny", {"model.he_gain": str(gain)}).model).M
        with torch.no_grad():
            rms[gain] = float(M(torch.randn(4096, cfg.model.z_dim)).pow(2).mean().sqrt())
    assert 0.5 < rms[True] < 1.5, rms
    assert rms[False] < 0.5 * rms[True], rms
    saved = cfg.to_dict()
    for key in ("he_gain", "pair_fade", "g_padding"):
        del saved["model"][key]
    del saved["train"]["window"]
    old = Config.from_dict(saved)  # a config.json written before issue 17's fixes
    assert (old.model.he_gain, old.model.pair_fade, old.model.g_padding, old.train.window) == \
        (False, "legacy", "zeros", 0.0)
    assert Config.from_dict(cfg.to_dict()).model.he_gain is True


def test_first_level_has_no_unused_convolution(model_cfg):
    G = Generator(model_cfg)
    assert G.blocks[0].conv1.conv is None
    assert not any(k.startswith("blocks.0.conv1.conv.") for k in G.state_dict())


def test_pair_discriminator_rejects_single_images(model_cfg):
    D = Discriminator(model_cfg, pair=True)
    with pytest.raises(AssertionError, match="expected"):
        D(torch.randn(2, 3, 16, 16), 16)


def test_generate_pairs_shapes(G):
    lat = sample_latents(G, 3, 2, 16, 0.9, torch.Generator().manual_seed(1))
    assert generate(G, lat, 16, 1.0).shape == (3, 2, 3, 16, 16)


def test_blur_equals_the_depthwise_121_convolution():
    from deeplandscape.nets.layers import Blur

    x = torch.randn(2, 5, 9, 7)
    k = torch.tensor([1.0, 2.0, 1.0])
    kernel = (k[:, None] * k[None, :] / 16).expand(5, 1, 3, 3)
    torch.testing.assert_close(Blur(5)(x), F.conv2d(x, kernel, padding=1, groups=5))


def test_generator_padding_draws_no_frame():
    """G's convolutions and blur pad by reflection: a flat map stays flat up to the border,
    where zero padding (older runs, model.g_padding = "zeros") darkens the outer ring."""
    from deeplandscape.nets.layers import Blur, EqualConv2d

    flat = torch.full((1, 4, 8, 8), 0.7)
    conv = EqualConv2d(4, 4, 3, padding=1, pad_mode="reflect")
    out = conv(flat)
    torch.testing.assert_close(out, out[:, :, 3:4, 3:4].expand_as(out))  # every pixel as the centre
    torch.testing.assert_close(Blur(4, "reflect")(flat), flat)
    assert (Blur(4)(flat)[..., 0, :] < 0.7 - 0.1).all()  # D's blur keeps StyleGAN's zero padding
    G = Generator(load_config("tiny").model)
    assert G.blocks[1].conv1.conv.pad_mode == "reflect" and G.blocks[1].conv1.blur.pad_mode == "reflect"
    old = Generator(load_config("tiny", {"model.g_padding": "zeros"}).model)
    assert old.blocks[1].conv1.conv.pad_mode == "zeros"
