"""The D-ratio sweep end to end: tune/d_ratio.py on the session's Ray, two Ray Train trials of the
tiny preset one after the other, each reporting the generation objective twice."""

from __future__ import annotations

import json
import time

import pyarrow.parquet as pq
import pytest
from ray import tune
from ray.tune.schedulers import TrialScheduler

from deeplandscape.config import load_config
from deeplandscape.train.checkpoint import latest_checkpoint
from tests.sweep.conftest import load_script

# 24 steps of 32 at 16 px, a report every 8. The run goes on for 16 steps after its first report:
# time enough for a trial stopped there to be aborted mid-run (with 8 steps in all, the run could
# end by itself before the abort reached it).
TINY = ["--set", "train.start_resolution=16", "--set", "train.total_kimg=0.768",
        "--set", "train.sample_kimg=0", "--set", "train.checkpoint_kimg=1000", "--set", "scale.cpus_per_worker=2"]


def two_schedules(cfg):
    """The step schedule against the cosine one, the other swept keys fixed (a grid runs in order)."""
    return {"train.p_pair_mode": tune.grid_search(["step", "cosine"]), "train.p_pair_start": 0.6,
            "train.p_pair_end": 0.05, "train.p_pair_anneal_kimg": 0.064, "train.p_pair_restart_per_phase": False,
            "train.crop_prob": 0.25}


def asha_stopping_the_second_trial(script):
    """The sweep's own ASHA, except that the second trial is stopped at its first report, mid-run,
    as ASHA stops a trial that trails (with stand-in networks no setting reliably trails)."""

    def schedule(cfg):
        asha = script.scheduler(cfg)
        decide = asha.on_trial_result

        def on_trial_result(controller, trial, result):
            action = decide(controller, trial, result)
            return TrialScheduler.STOP if trial.trial_id.endswith("_00001") else action

        asha.on_trial_result = on_trial_result
        return asha

    return schedule


def free_cpus_after(ray, seconds: float) -> float:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and ray.available_resources().get("CPU", 0) < ray.cluster_resources()["CPU"]:
        time.sleep(0.5)
    return ray.available_resources().get("CPU", 0)


def test_d_ratio_sweep_trains_each_trial_reports_the_objective_and_writes_its_results(local_ray, synth_data,
                                                                                       sweep_env, capsys):
    script = load_script("d_ratio")
    out, real = sweep_env / "out", sweep_env / "real"
    real.mkdir()  # FID against 6 of the photos (and their masks for the static pixels): cheaper
    for photo in sorted((synth_data / "photos").glob("*.png"))[:12]:
        (real / photo.name).write_bytes(photo.read_bytes())
    argv = ["--config", "tiny", "--images", str(synth_data / "photos"), "--videos", str(synth_data / "videos"),
            "--real-images", str(real), "--storage", str(sweep_env / "store"), "--name", "dr", "--samples", "1",
            "--max-concurrent", "1", "--eval-every", "8", "--fid-samples", "4", "--pairs", "2", "--out", str(out),
            *TINY]
    schedule = asha_stopping_the_second_trial(script)
    assert script.main(argv, space=two_schedules, schedule=schedule) == 0
    printed = capsys.readouterr().out

    rows = pq.read_table(out / "results.parquet").to_pylist()
    assert len(rows) == 2 and {r["train.p_pair_mode"] for r in rows} == {"step", "cosine"}
    assert all(r["error"] == "" for r in rows), rows
    for r in rows:  # objective = 1 x FID + 500 x static LPIPS, as tune/d_ratio.py defines it
        assert r["fid"] > 0 and 0 < r["static_lpips"] < 1 and 0 < r["static_ssim"] <= 1
        assert r["objective"] == pytest.approx(r["fid"] + 500 * r["static_lpips"])
    # One trial at a time. The first ran to its end: 3 reports (every 8 steps), the last with its
    # final checkpoint (ASHA's max_t, reached at that report, lets a finished run end by itself).
    first, second = sorted(rows, key=lambda r: r["trial"])
    assert (first["status"], first["reports"], first["kimg"]) == ("finished", 3, pytest.approx(0.768))
    runs = sweep_env / "store" / "dr" / "runs"
    assert latest_checkpoint(str(runs / first["trial"])).images_seen == 768
    lines = [json.loads(x) for x in (runs / first["trial"] / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [8, 16, 24] and all("objective" in m for m in lines)
    # The second was stopped at its first report, in the middle of its run: its run was aborted.
    assert (second["status"], second["reports"], second["kimg"]) == ("stopped early", 1, pytest.approx(0.256))
    assert latest_checkpoint(str(runs / second["trial"])) is None

    # Nothing is left holding the CPUs: the Train workers' placement groups went with their trials,
    # the stopped one's too (its trial aborted its Train run before its actor ended).
    assert free_cpus_after(local_ray, 30) == local_ray.cluster_resources()["CPU"]

    # The best settings are a preset: the tiny preset with the best trial's values.
    best = min((r for r in rows if r["status"] == "finished"), key=lambda r: r["objective"])
    cfg = load_config(str(out / "best.toml"))
    assert cfg.train.p_pair_mode == best["train.p_pair_mode"] and cfg.train.crop_prob == 0.25
    assert cfg.model == load_config("tiny").model and cfg.train.total_kimg == load_config("tiny").train.total_kimg
    page = (out / "index.html").read_text()
    assert page.count("<svg") == 1 + 6 and page.count('class="trial"') == 2 * 6  # curves + one plot per key
    assert (out / "results.csv").read_text().count("\n") == 3
    assert f"best: trial {best['trial']}" in printed

    # The same command again finds the sweep and resumes it: both trials are done, none runs again.
    assert script.main(argv, space=two_schedules, schedule=schedule) == 0
    assert "resuming the sweep" in capsys.readouterr().out
    assert {r["trial"] for r in pq.read_table(out / "results.parquet").to_pylist()} == {r["trial"] for r in rows}


def test_d_ratio_sweep_names_what_is_wrong(synth_data, sweep_env, capsys):
    script = load_script("d_ratio")
    base = ["--images", str(synth_data / "photos"), "--videos", str(synth_data / "videos"),
            "--storage", str(sweep_env / "store")]
    assert script.main(["--config", "no-such-preset", *base]) == 2
    assert "no config preset 'no-such-preset'" in capsys.readouterr().err
    assert script.main(["--config", "tiny", *base, "--real-images", str(sweep_env / "missing")]) == 2
    assert "no real photos at" in capsys.readouterr().err
    assert script.main(["--config", "tiny", *base], space=lambda cfg: {"train.p_pair_mode": "exponential"}) == 2
    assert "train.p_pair_mode must be one of" in capsys.readouterr().err
