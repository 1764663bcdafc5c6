"""One super-resolution network for the module's tests: trained on the tiny run with
`deeplandscape train-superres` under the session's Ray, as a user trains it."""

from __future__ import annotations

import shutil

import pytest

from deeplandscape.cli import main
from deeplandscape.data.synth import write_dataset

HI = 128  # 4 x the tiny run's 32 px
SR_STEPS = 100  # 90 L1 steps, then 10 of the GAN stage
# Two pairs per video (one inversion batch of 4), 8 O steps; 10x ESRGAN's L1 learning rate, to
# beat bicubic upsampling within a few dozen steps.
SR_SETS = ["superres.frames_per_video=2", "invert.opt_steps=8", "superres.psnr_steps=90", "superres.psnr_lr=2e-3",
           "superres.log_every=5"]


@pytest.fixture(scope="session")
def sr_videos(tmp_path_factory):
    """Two 128 px time-lapses (4 x the run's 32 px) and one too small to give a hi-res frame."""
    root = tmp_path_factory.mktemp("sr-videos")
    write_dataset(root / "big", images=0, videos=2, frames=5, size=HI, seed=3)
    write_dataset(root / "small", images=0, videos=1, frames=3, size=64, seed=4)
    videos = root / "videos"
    shutil.copytree(root / "big" / "videos", videos)
    shutil.copy(root / "small" / "videos" / "00000.mp4", videos / "small.mp4")
    return videos


@pytest.fixture(scope="session")
def sr_run(tiny_run, sr_videos, local_ray, tmp_path_factory):
    run = tmp_path_factory.mktemp("sr-run") / "run"
    shutil.copytree(tiny_run / "checkpoints", run / "checkpoints")
    shutil.copytree(tiny_run / "encoder" / "checkpoints", run / "encoder" / "checkpoints")
    args = ["train-superres", "--run-dir", str(run), "--videos", str(sr_videos), "--max-steps", str(SR_STEPS)]
    assert main(args + [a for s in SR_SETS for a in ("--set", s)]) == 0
    return run
