"""The command line end to end: synth -> train on local Ray -> resume -> sample."""

from __future__ import annotations

import pytest

from deeplandscape.cli import main


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


def test_sample_without_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert main(["sample", "--run-dir", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
