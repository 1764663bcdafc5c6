"""The x4 RRDB network, the SuperResolver's shapes and ranges, and its errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from deeplandscape.config import SuperResConfig, load_config
from deeplandscape.superres.nets import RRDBNet, d_ragan_loss, g_ragan_loss
from deeplandscape.superres.resolver import SuperResolver
from deeplandscape.superres.train import stage_lr

TINY = load_config("tiny").superres


def resolver(max_size: int = 1024) -> SuperResolver:
    torch.manual_seed(0)
    net = RRDBNet(TINY.nf, TINY.nb, TINY.gc).eval().requires_grad_(False)
    return SuperResolver(net, dataclasses.replace(TINY, max_size=max_size), torch.device("cpu"))


def test_rrdbnet_is_x4_and_uses_esrgans_parameter_names():
    net = RRDBNet(nf=8, nb=2, gc=4)
    out = net(torch.rand(2, 3, 12, 20) * 2 - 1)
    assert out.shape == (2, 3, 48, 80)
    names = set(net.state_dict())
    # ESRGAN's released RRDB_ESRGAN_x4.pth / RRDB_PSNR_x4.pth use these keys (superres.init loads them).
    for key in ("conv_first.weight", "RRDB_trunk.1.RDB3.conv5.bias", "trunk_conv.weight", "upconv1.weight",
                "upconv2.weight", "HRconv.weight", "conv_last.bias"):
        assert key in names, key


def test_upscale_gives_4x_frames_in_range_and_the_sr_frames_where_everything_is_dynamic():
    sr = resolver()
    frames = (torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1) * 1.5  # past [-1, 1]
    photo = torch.rand(3, 256, 256) * 2 - 1  # any size with the frames' aspect: resized to the output
    out = sr.upscale(frames, photo, torch.zeros(1, 256, 256))
    assert out.shape == (3, 3, 128, 128) and out.dtype == torch.float32
    assert out.min() >= -1 and out.max() <= 1
    plain = sr.super_resolve(frames)
    assert plain.shape == (3, 3, 128, 128) and plain.min() >= -1 and plain.max() <= 1
    torch.testing.assert_close(sr.upscale(frames, photo, torch.ones(1, 256, 256)), plain)
    torch.testing.assert_close(sr.upscale(frames, photo, None), plain)  # no mask known: SR frames as they are
    # Batching over frames changes nothing.
    torch.testing.assert_close(sr.super_resolve(frames[1:2]), plain[1:2], atol=1e-5, rtol=0)


def test_output_is_capped_at_max_size_and_keeps_a_non_square_aspect():
    sr = resolver(max_size=96)
    out = sr.upscale(torch.zeros(2, 3, 32, 48), torch.zeros(3, 64, 96), torch.zeros(1, 64, 96))
    assert out.shape == (2, 3, 64, 96)  # 4x would be 128 x 192: shrunk to fit 96


def test_bad_inputs_say_what_is_wrong(tmp_path):
    sr = resolver()
    with pytest.raises(ValueError, match="photo_hr is 128x64"):
        sr.upscale(torch.zeros(1, 3, 32, 32), torch.zeros(3, 64, 128), torch.zeros(1, 64, 128))
    with pytest.raises(ValueError, match=r"dynamic_mask must be \[1, 64, 64\]"):
        sr.upscale(torch.zeros(1, 3, 32, 32), torch.zeros(3, 64, 64), torch.zeros(1, 32, 32))
    with pytest.raises(ValueError, match=r"frames must be \[T, 3, h, w\]"):
        sr.upscale(torch.zeros(3, 32, 32), torch.zeros(3, 64, 64), None)
    with pytest.raises(FileNotFoundError, match="deeplandscape train-superres --run-dir") as e:
        SuperResolver.load(str(tmp_path / "run"))
    assert str(tmp_path / "run" / "superres" / "checkpoints") in str(e.value)


def test_relativistic_losses_follow_the_logits():
    confident = torch.tensor([5.0, 6.0]), torch.tensor([-5.0, -6.0])
    assert d_ragan_loss(*confident) < 0.01 < g_ragan_loss(*confident)
    assert abs(float(d_ragan_loss(torch.zeros(4), torch.zeros(4))) - 0.6931) < 1e-3  # log 2 when D cannot tell


def test_paper_presets_use_esrgans_network_and_tiny_a_small_one():
    paper = load_config("paper256").superres
    assert (paper.nf, paper.nb, paper.gc, paper.hr_patch, paper.batch) == (64, 23, 32, 128, 16)
    assert paper.amp == "bf16" and paper.pair_method == "EO"
    assert SuperResConfig().max_size == 1024
    assert TINY.nb < paper.nb and TINY.nf < paper.nf


def test_learning_rate_follows_esrgans_two_stages():
    sr = SuperResConfig(psnr_steps=1000, gan_steps=400, psnr_lr=2e-4, gan_lr=1e-4)
    assert stage_lr(sr, 0) == ("psnr", 2e-4) and stage_lr(sr, 199) == ("psnr", 2e-4)
    assert stage_lr(sr, 200) == ("psnr", 1e-4) and stage_lr(sr, 999) == ("psnr", 2e-4 / 16)
    assert stage_lr(sr, 1000) == ("gan", 1e-4) and stage_lr(sr, 1049) == ("gan", 1e-4)
    assert stage_lr(sr, 1050) == ("gan", 5e-5) and stage_lr(sr, 1399) == ("gan", 1e-4 / 16)
