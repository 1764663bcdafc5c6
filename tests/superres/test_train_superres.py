"""`deeplandscape train-superres` end to end on local Ray: pairs built once, checkpoints, resume."""

from __future__ import annotations

import json
import shutil

import torch
import torch.nn.functional as F

from deeplandscape.cli import main
from deeplandscape.data.synth import write_dataset
from deeplandscape.superres.cli import superres_config
from deeplandscape.superres.pairs import PairSet, list_videos
from deeplandscape.superres.resolver import SuperResolver
from deeplandscape.superres.train import run_superres_worker
from deeplandscape.train.checkpoint import latest_checkpoint

# Two pairs per video (one inversion batch of 4), 8 O steps; two L1 steps, then the GAN stage.
SETS = ["superres.frames_per_video=2", "invert.opt_steps=8", "superres.psnr_steps=2", "superres.log_every=1"]
ARGS = ["--max-steps", "3", *(arg for s in SETS for arg in ("--set", s))]


def test_train_superres_builds_pairs_once_trains_and_resumes(tmp_path, tiny_run, local_ray, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_run / "checkpoints", run / "checkpoints")
    shutil.copytree(tiny_run / "encoder" / "checkpoints", run / "encoder" / "checkpoints")
    # Two 128 px time-lapses (4 x the run's 32 px) and one too small to give a hi-res frame.
    videos = tmp_path / "videos"
    write_dataset(tmp_path / "big", images=0, videos=2, frames=5, size=128, seed=3)
    write_dataset(tmp_path / "small", images=0, videos=1, frames=3, size=64, seed=4)
    shutil.copytree(tmp_path / "big" / "videos", videos)
    shutil.copy(tmp_path / "small" / "videos" / "00000.mp4", videos / "small.mp4")
    args = ["train-superres", "--run-dir", str(run), "--videos", str(videos), *ARGS]

    assert main(args) == 0
    shards = sorted(p for p in (run / "superres" / "pairs").glob("*.npz"))
    assert len(shards) == 3 and (run / "superres" / "pairs" / "settings.json").is_file()
    pairs = PairSet.load(str(run), list_videos(str(videos)))
    assert pairs.hi.shape == (4, 3, 128, 128) and pairs.lo.shape == (4, 3, 32, 32)  # the small video is skipped
    # The low-res halves are G's reconstructions, not the downsampled frames themselves.
    down = F.interpolate(pairs.hi.float(), size=(32, 32), mode="area")
    gap = (down - pairs.lo.float()).abs().mean() / 255
    assert 0.005 < gap < 0.3, gap
    assert latest_checkpoint(str(run / "superres")).step == 3
    built = {p.name: p.stat().st_mtime_ns for p in shards}

    # A re-run resumes: same pairs, three more steps. In-process (the function every Ray Train
    # worker runs), to pay Ray Train's start once in this test.
    cfg = superres_config(str(run), None, SETS)
    run_superres_worker(cfg, str(run), list_videos(str(videos)), max_steps=3)
    assert {p.name: p.stat().st_mtime_ns for p in (run / "superres" / "pairs").glob("*.npz")} == built
    assert latest_checkpoint(str(run / "superres")).step == 6
    lines = [json.loads(line) for line in (run / "superres" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [1, 2, 3, 4, 5, 6]
    assert [m["stage"] for m in lines] == ["psnr"] * 2 + ["gan"] * 4
    assert all("D_gan" in m for m in lines[2:]) and all(m["psnr"] > 0 for m in lines)

    sr = SuperResolver.load(str(run))
    out = sr.upscale(pairs.lo[:2].float() / 127.5 - 1, pairs.hi[0].float() / 127.5 - 1, torch.zeros(1, 128, 128))
    assert out.shape == (2, 3, 128, 128)

    # Pairs built with other inversion settings are not mixed in silently.
    capsys.readouterr()
    assert main([*args, "--set", "invert.opt_steps=9"]) == 2
    assert "--rebuild-pairs" in capsys.readouterr().err


def test_train_superres_says_what_is_missing(tmp_path, tiny_run, capsys):
    run, empty = tmp_path / "run", tmp_path / "empty"
    empty.mkdir()

    def error(videos) -> str:
        assert main(["train-superres", "--run-dir", str(run), "--videos", str(videos)]) == 2
        return capsys.readouterr().err

    assert "train first (deeplandscape train)" in error(empty)
    shutil.copytree(tiny_run / "checkpoints", run / "checkpoints")
    assert f"deeplandscape train-encoder --run-dir {run}" in error(empty)  # the pairs' inversion starts from E
    shutil.copytree(tiny_run / "encoder" / "checkpoints", run / "encoder" / "checkpoints")
    assert f"no videos (.mp4, .mov, .mkv, .webm, .avi) found at {empty}" in error(empty)
    assert f"no such folder: {tmp_path / 'nowhere'}" in error(tmp_path / "nowhere")
