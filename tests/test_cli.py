"""The command line end to end: synth -> train on local Ray -> resume -> sample."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from deeplandscape.cli import main
from deeplandscape.video import probe_video, read_video


def test_every_command_has_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for command in ("synth", "train", "sample", "calibrate-motion", "weights", "demo", "train-lighting", "animate"):
        assert command in out
        with pytest.raises(SystemExit) as e:
            main([command, "--help"])
        assert e.value.code == 0


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["train", "--config", "paper256", "--run-dir", str(run_dir), "--set", "train.r1_gamma=5",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert '"r1_gamma": 5.0' in out and "phase 5:  256 px" in out
    assert not run_dir.exists()


def test_bad_override_is_a_clear_error(tmp_path, capsys):
    assert main(["train", "--run-dir", str(tmp_path), "--set", "train.r1_gama=5", "--dry-run"]) == 2
    assert "unknown config key 'train.r1_gama'" in capsys.readouterr().err
    assert main(["train", "--run-dir", str(tmp_path), "--set", "model.resolution=banana", "--dry-run"]) == 2
    assert "model.resolution" in capsys.readouterr().err


def test_a_config_saved_by_another_version_still_loads():
    from deeplandscape.config import Config

    saved = Config().to_dict()
    saved["train"]["retired_knob"] = 3  # a field a later version removed
    del saved["invert"]["lighting_lr"]  # a field an older version did not have
    saved["model"]["resolution"] = 64
    with pytest.warns(UserWarning, match=r"does not have: \['train.retired_knob'\]"):
        cfg = Config.from_dict(saved)
    assert cfg.model.resolution == 64 and cfg.invert.lighting_lr == Config().invert.lighting_lr


def test_train_resume_and_sample_on_local_ray(local_ray, tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["synth", str(data), "--images", "16", "--videos", "3", "--frames", "8", "--size", "64"]) == 0
    run_dir = tmp_path / "run"
    common = ["train", "--config", "tiny", "--images", str(data / "photos"), "--videos", str(data / "videos"),
              "--run-dir", str(run_dir), "--set", "train.batch={\"8\": 8}", "--set", "train.log_every=5",
              "--set", "train.checkpoint_kimg=0.08", "--set", "train.sample_kimg=0.08"]
    assert main([*common, "--set", "train.total_kimg=0.08"]) == 0
    assert (run_dir / "config.json").is_file()
    assert json.loads((run_dir / "config.json").read_text())["train"]["total_kimg"] == 0.08
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-00000010"]
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (run_dir / "samples" / "grid-000000.1.png").is_file()
    assert probe_video(run_dir / "samples" / "video-000000.1.mp4").num_frames == 16

    # The same command with a longer schedule resumes from step 10.
    capsys.readouterr()
    assert main([*common, "--set", "train.total_kimg=0.16"]) == 0
    assert "resuming" in capsys.readouterr().out
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == [5, 10, 15, 20]
    assert "step-00000020" in [p.name for p in (run_dir / "checkpoints").iterdir()]

    out = tmp_path / "samples"
    assert main(["sample", "--run-dir", str(run_dir), "--out", str(out), "--videos", "2", "--frames", "10",
                 "--fps", "12", "--scale", "2", "--direction", "9h", "--speed", "x2.5", "--gif"]) == 0
    for i in range(2):
        frames, fps = read_video(out / f"sample-{i:04d}-9h.mp4")
        assert frames.shape == (10, 16, 16, 3) and fps == 12  # an 8 px model (first phase), --scale 2
        assert Image.open(out / f"sample-{i:04d}-9h.jpg").size == (16, 16)
        assert Image.open(out / f"sample-{i:04d}-9h.gif").n_frames == 10
    grid = np.asarray(Image.open(out / "grid.png"))
    assert grid.shape == (2 * 16, 6 * 16, 3)

    # Many videos through Ray Data: an actor pool, the generator loaded once per actor.
    many = tmp_path / "many"
    assert main(["sample", "--run-dir", str(run_dir), "--out", str(many), "--videos", "5", "--frames", "6",
                 "--workers", "2", "--direction", "random"]) == 0
    rows = pq.read_table(many / "manifest.parquet").to_pylist()
    assert [r["seed"] for r in rows] == [0, 1, 2, 3, 4] and not any(r["error"] for r in rows)
    for r in rows:
        assert probe_video(r["uri"]).num_frames == 6
        assert r["direction"] in {f"{h}h" for h in range(1, 13)}
    assert len({r["direction"] for r in rows}) > 1  # "random" draws per video


def test_sample_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["sample", "--run-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no checkpoint" in capsys.readouterr().err


def test_calibrate_motion_cli_on_synthetic_time_lapses(local_ray, synth_data, tmp_path, capsys):
    """The written motions load back and `sample --homographies` accepts them."""
    from deeplandscape.animate.homography import load_motions

    out = tmp_path / "motions.json"
    assert main(["calibrate-motion", "--videos", str(synth_data / "videos"), "--out", str(out)]) == 0
    motions = load_motions(out)
    assert {f"{h}h" for h in range(1, 13)} <= set(motions) and "measured-1" in motions
    assert (tmp_path / "motions.report.json").is_file()
    assert "wrote the motions" in capsys.readouterr().out


def test_weights_status_names_missing_files_and_where_they_go(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEEPLANDSCAPE_WEIGHTS", str(tmp_path))
    (tmp_path / "pt_inception-2015-12-05-6726825d.pth").write_bytes(b"x" * 10)
    assert main(["weights", "status"]) == 0
    out = capsys.readouterr().out
    assert "inception  present" in out and "vgg16      MISSING" in out and str(tmp_path) in out
