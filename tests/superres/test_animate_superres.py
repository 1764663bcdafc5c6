"""`deeplandscape animate --superres` and `animate-bucket --superres`: x4 videos whose static
parts carry the hi-res photo's detail (paper Fig. 5), with the network of conftest.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d
from PIL import Image

from deeplandscape.cli import main
from deeplandscape.data.synth import render_frame, sample_scene
from deeplandscape.invert.photos import to_model_input
from deeplandscape.render import to_uint8
from deeplandscape.superres.resolver import SuperResolver
from deeplandscape.train.checkpoint import latest_checkpoint
from deeplandscape.video import probe_video, read_video
from tests.superres.conftest import HI


@pytest.fixture(scope="module")
def textured_photo(tmp_path_factory):
    """A 128 px landscape with sharp 8 px texture on its static parts (detail that the 32 px model
    holds only in part), and its sky + water mask next to it."""
    folder = tmp_path_factory.mktemp("textured")
    image, mask = render_frame(sample_scene(np.random.default_rng(11)), 0.0, HI)
    texture = np.random.default_rng(0).uniform(-40, 40, (HI // 8, HI // 8, 1)).repeat(8, 0).repeat(8, 1)
    image = np.clip(image + texture * (1 - mask[..., None]), 0, 255).astype(np.uint8)
    Image.fromarray(image).save(folder / "rocks.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(folder / "rocks.mask.png")
    return folder


def detail(img: np.ndarray) -> torch.Tensor:
    """High frequencies of uint8 [H, W, 3]: the image minus its Gaussian blur (sigma 1.5 px)."""
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].float() / 255
    return (x - gaussian_blur2d(x, (7, 7), (1.5, 1.5)))[0]


def test_animate_superres_keeps_the_photos_detail_in_static_parts(sr_run, textured_photo, tmp_path):
    out = tmp_path / "out"
    args = ["animate", str(textured_photo / "rocks.png"), "--run-dir", str(sr_run), "--out", str(out),
            "--directions", "3h", "--frames", "8", "--speed", "8", "--set", "invert.opt_steps=5",
            "--set", "invert.finetune_steps=5", "--superres"]
    assert main(args) == 0
    video = out / "rocks" / "3h.mp4"
    info = probe_video(video)
    assert (info.width, info.height, info.num_frames) == (HI, HI, 8)  # 4 x 32 px
    meta = json.loads((out / "rocks" / "inversion.json").read_text())
    assert meta["superres"] == str(latest_checkpoint(str(sr_run / "superres")).uri)
    assert Image.open(out / "rocks" / "3h.jpg").size == (HI, HI)

    frames, _ = read_video(video)  # [8, 128, 128, 3]
    photo = np.asarray(Image.open(textured_photo / "rocks.png"))
    mask = np.asarray(Image.open(textured_photo / "rocks.mask.png")) > 127
    static = ~mask
    # The model's own first frame (32 px, from compare.png: photo | reconstruction | first frame).
    first_lr = np.array(Image.open(out / "rocks" / "compare.png"))[:, 64:96]
    lr = torch.from_numpy(first_lr).permute(2, 0, 1)[None].float() / 127.5 - 1
    # The video is the library's blend of that frame with this photo and mask (up to H.264's loss).
    sr = SuperResolver.load(str(sr_run))
    expected = to_uint8(sr.upscale(lr, to_model_input(photo), torch.from_numpy(mask).float()[None]))[0]
    assert np.abs(frames[0].astype(int) - expected).mean() < 3
    # Without --superres the frame would be the 32 px one enlarged: the photo's texture is only in
    # the super-resolved video.
    plain = to_uint8(F.interpolate(lr, size=(HI, HI), mode="bicubic", align_corners=False).clamp(-1, 1))[0]
    static_t = torch.from_numpy(static)

    def corr_with_photo(img: np.ndarray) -> float:
        d, ref = detail(img)[:, static_t], detail(photo)[:, static_t]
        return float(torch.corrcoef(torch.stack([d.flatten(), ref.flatten()]))[0, 1])

    sr_corr, plain_corr = corr_with_photo(frames[0]), corr_with_photo(plain)
    print(f"static detail, correlation with the photo's: superres {sr_corr:.2f}, plain x4 {plain_corr:.2f}")
    assert sr_corr > plain_corr + 0.12  # measured: 0.21 against -0.06

    # The static parts hold still: super-resolving each frame on its own adds no flicker there.
    # (How far sky and water move is the tiny model's business, and too little to measure on this
    # short run; tests/invert/test_inversion.py checks the animation itself.)
    motion = frames.astype(np.float64).std(axis=0).mean(axis=-1)  # [H, W], grey levels
    assert motion[static].mean() < 0.5, motion[static].mean()


def test_animate_superres_without_a_network_names_the_command(tiny_run, textured_photo, tmp_path, capsys):
    assert main(["animate", str(textured_photo / "rocks.png"), "--run-dir", str(tiny_run), "--out",
                 str(tmp_path / "out"), "--superres"]) == 2
    assert f"deeplandscape train-superres --run-dir {tiny_run}" in capsys.readouterr().err


def test_the_bucket_job_super_resolves_too(sr_run, textured_photo, tmp_path, local_ray):
    out = tmp_path / "out"
    assert main(["animate-bucket", str(textured_photo), str(out), "--run-dir", str(sr_run), "--directions", "1",
                 "--frames", "4", "--set", "invert.opt_steps=3", "--set", "invert.finetune_steps=3",
                 "--superres"]) == 0
    done = json.loads((out / "rocks" / "done.json").read_text())
    assert done["superres"] == str(latest_checkpoint(str(sr_run / "superres")).uri)
    info = probe_video(next((out / "rocks").glob("*.mp4")))
    assert (info.width, info.height, info.num_frames) == (HI, HI, 4)
