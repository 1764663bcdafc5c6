"""What every sweep writes: presets that read back as written, plots with a dot per trial, the
refusal to resume a sweep with other settings, the choice of the best trial."""

from __future__ import annotations

import math

import pytest

from deeplandscape.config import load_config, read_preset
from deeplandscape.sweep import common


def test_a_preset_reads_back_as_the_keys_it_was_written_from(tmp_path):
    keys = {"model.resolution": 64, "train.batch": {"8": 32, "16": 16}, "train.lr": {"8": 0.002},
            "train.p_pair_mode": "cosine", "train.p_pair_restart_per_phase": False,
            "train.p_pair_start": 0.41234567890123, "train.p_pair_anneal_kimg": 1.5e-05, "train.crop_prob": 0.0,
            "invert.sky_classes": "2, 5"}
    path = tmp_path / "best.toml"
    path.write_text(common.preset_text(keys, "Best trial x of a sweep.\nUse: --config THIS.toml"))
    assert read_preset(str(path)) == keys
    cfg = load_config(str(path))
    assert (cfg.train.p_pair_mode, cfg.train.p_pair_start, cfg.train.batch) == ("cosine", 0.41234567890123,
                                                                                 {"8": 32, "16": 16})
    assert path.read_text().startswith("# Best trial x of a sweep.\n# Use: --config THIS.toml\n")


def test_scatter_plots_draw_one_dot_per_trial_with_an_objective():
    trials = [(0.001, 2.0, "finished"), (0.1, 1.0, "stopped early"), (0.05, None, "error"), (0.01, math.nan, "x")]
    svg = common.scatter_plot(trials, "objective vs opt_lr", "opt_lr")
    assert svg.count('class="trial"') == 2 and "opt_lr (log)" in svg  # 0.001 .. 0.1 spans 100x: log axis
    svg = common.scatter_plot([(True, 1.0, "finished"), (False, 2.0, "finished"), (True, 3.0, "finished")], "t", "x")
    assert svg.count('class="trial"') == 3 and ">false<" in svg and ">true<" in svg  # categories
    svg = common.scatter_plot([("anneal", 1.0, "finished"), ("step", 2.0, "finished")], "t", "mode")
    assert ">anneal<" in svg and ">step<" in svg
    assert "no data" in common.scatter_plot([(1.0, None, "error")], "t", "x")


def test_a_started_sweep_is_only_resumed_with_its_own_settings(tmp_path):
    path = tmp_path / "sweep"
    common.check_or_record_settings(str(path), {"samples": 4, "space": {"a": "uniform"}})
    # Not started by Tune yet (it failed while checking its inputs): new settings replace the old.
    common.check_or_record_settings(str(path), {"samples": 8, "space": {"a": "uniform"}})
    assert '"samples": 8' in (path / "sweep.json").read_text()
    (path / "tuner.pkl").write_bytes(b"")  # where Tune keeps a started sweep's state
    common.check_or_record_settings(str(path), {"samples": 8, "space": {"a": "uniform"}})  # the same: resumes
    with pytest.raises(ValueError, match=r"other settings \(space differ"):
        common.check_or_record_settings(str(path), {"samples": 8, "space": {"a": "loguniform"}})
    with pytest.raises(ValueError, match="plain folder name"):
        common.sweep_dir(str(tmp_path), "a/b")


def row(trial, status, objective):
    return {"trial": trial, "status": status, "objective": objective, "error": "boom" if status == "error" else ""}


def test_the_best_trial_is_the_best_that_ran_to_its_end():
    rows = [row("a", "finished", 2.0), row("b", "stopped early", 1.0), row("c", "error", None),
            row("d", "finished", 3.0)]
    assert common.best_row(rows)["trial"] == "a"  # b's 1.0 is from earlier in its run
    assert common.best_row([row("b", "stopped early", 1.0), row("e", "stopped early", 0.5)])["trial"] == "e"
    with pytest.raises(RuntimeError, match="c: boom"):
        common.best_row([row("c", "error", None)])
