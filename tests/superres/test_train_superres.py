"""`deeplandscape train-superres` end to end on local Ray: pairs built once, checkpoints, resume."""

from __future__ import annotations

import json
import shutil

import torch
import torch.nn.functional as F

from deeplandscape.cli import main
from deeplandscape.superres.cli import superres_config
from deeplandscape.superres.pairs import PairSet, list_videos
from deeplandscape.superres.resolver import SuperResolver
from deeplandscape.superres.train import run_superres_worker
from deeplandscape.train.checkpoint import latest_checkpoint
from tests.superres.conftest import SR_SETS, SR_STEPS

def test_train_superres_builds_pairs_once_trains_and_resumes(sr_run, sr_videos, tmp_path, capsys):
    run = tmp_path / "run"  # a copy: the session's network stays as it is
    shutil.copytree(sr_run, run)
    shards = sorted(p for p in (run / "superres" / "pairs").glob("*.npz"))
    assert len(shards) == 3 and (run / "superres" / "pairs" / "settings.json").is_file()
    pairs = PairSet.load(str(run), list_videos(str(sr_videos)))
    assert pairs.hi.shape == (4, 3, 128, 128) and pairs.lo.shape == (4, 3, 32, 32)  # the small video is skipped
    # The low-res halves are G's reconstructions, not the downsampled frames themselves.
    down = F.interpolate(pairs.hi.float(), size=(32, 32), mode="area")
    gap = (down - pairs.lo.float()).abs().mean() / 255
    assert 0.005 < gap < 0.3, gap
    assert latest_checkpoint(str(run / "superres")).step == SR_STEPS
    built = {p.name: p.stat().st_mtime_ns for p in shards}

    # A re-run resumes: same pairs, five more steps. In-process (the function every Ray Train
    # worker runs), to pay Ray Train's start once.
    cfg = superres_config(str(run), None, SR_SETS)
    run_superres_worker(cfg, str(run), list_videos(str(sr_videos)), max_steps=5)
    assert {p.name: p.stat().st_mtime_ns for p in (run / "superres" / "pairs").glob("*.npz")} == built
    assert latest_checkpoint(str(run / "superres")).step == SR_STEPS + 5
    lines = [json.loads(line) for line in (run / "superres" / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == list(range(5, SR_STEPS + 6, 5))
    assert [m["stage"] for m in lines] == ["psnr"] * 18 + ["gan"] * 3  # L1 up to step 90, then the GAN stage
    assert all("D_gan" in m for m in lines[18:]) and all(m["psnr"] > 0 for m in lines)
    # The L1 stage learned: better than bicubic upsampling on its pairs by the end of it.
    assert lines[17]["psnr"] > lines[17]["psnr_bicubic"], lines[17]

    sr = SuperResolver.load(str(run))
    out = sr.upscale(pairs.lo[:2].float() / 127.5 - 1, pairs.hi[0].float() / 127.5 - 1, torch.zeros(1, 128, 128))
    assert out.shape == (2, 3, 128, 128)

    # Pairs built with other inversion settings are not mixed in silently.
    capsys.readouterr()
    args = ["train-superres", "--run-dir", str(run), "--videos", str(sr_videos), "--max-steps", "1",
            *(a for s in SR_SETS for a in ("--set", s))]
    assert main([*args, "--set", "invert.opt_steps=9"]) == 2
    err = capsys.readouterr().err
    assert "--rebuild-pairs" in err and "optimisation" in err and "frames_per_video" not in err, err


def test_train_superres_says_what_is_missing(tmp_path, tiny_run, capsys):
    run, empty = tmp_path / "run", tmp_path / "empty"
    empty.mkdir()

    def error(videos) -> str:
        assert main(["train-superres", "--run-dir", str(run), "--videos", str(videos)]) == 2
        return capsys.readouterr().err

    assert f"--run-dir {run}: no such file or folder" in error(empty)  # on the driver, before anything starts
    run.mkdir()
    assert "train first (deeplandscape train)" in error(empty)
    shutil.copytree(tiny_run / "checkpoints", run / "checkpoints")
    assert f"deeplandscape train-encoder --run-dir {run}" in error(empty)  # the pairs' inversion starts from E
    shutil.copytree(tiny_run / "encoder" / "checkpoints", run / "encoder" / "checkpoints")
    assert f"no videos (.mp4, .mov, .mkv, .webm, .avi) found at {empty}" in error(empty)
    assert f"--videos {tmp_path / 'nowhere'}: no such file or folder" in error(tmp_path / "nowhere")
