"""The inversion sweep: tune/inversion.py end to end on the session's Ray and the tiny trained run
(ASHA stops a deliberately bad trial; later trials still run), its errors, and the objective's
penalty for motion in the static part of a photo."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from ray import tune

from deeplandscape.evaluate.image_metrics import MaskedLPIPS
from deeplandscape.invert.animate_photos import PhotoAnimator, inversion_config, list_photos
from deeplandscape.runs import load_model
from deeplandscape.sweep.inversion import InversionObjective, Progress
from tests.sweep.conftest import load_script

SHORT = ["--set", "invert.opt_steps=12", "--set", "invert.finetune_steps=6"]  # 18 steps: ASHA rungs 2, 4, 8, 16


def learning_rates(base):
    """Good, absurdly small (O cannot move W or S: it keeps the encoder's guess), good again."""
    return {"invert.opt_lr": tune.grid_search([0.1, 1e-6, 0.05])}


def test_inversion_sweep_stops_the_bad_trial_early_and_writes_its_results(local_ray, tiny_run, synth_data,
                                                                          sweep_env, capsys):
    script = load_script("inversion")
    out = sweep_env / "out"
    argv = ["--run-dir", str(tiny_run), "--photos", str(synth_data / "photos"), "--max-photos", "2",
            "--samples", "1", "--max-concurrent", "1", "--cpus-per-trial", "2", "--report-every", "3",
            "--frames", "4", "--storage", str(sweep_env / "store"), "--name", "inv", "--out", str(out), *SHORT]
    assert script.main(argv, space=learning_rates) == 0
    printed = capsys.readouterr().out

    rows = {r["invert.opt_lr"]: r for r in pq.read_table(out / "results.parquet").to_pylist()}
    assert set(rows) == {0.1, 1e-6, 0.05} and all(r["error"] == "" for r in rows.values())
    good, bad, third = rows[0.1], rows[1e-6], rows[0.05]
    assert (good["status"], good["steps"], good["reports"]) == ("finished", 18, 6)  # 12 O + 6 F steps
    # One trial at a time, in grid order: at the first rung (2 steps, judged at the report of step 3)
    # the bad trial trails the good one and ASHA stops it; the trial after it still starts and runs.
    curves = json.loads((out / "metrics.json").read_text())["curves"]
    assert curves[bad["trial"]]["objective"][0] > curves[good["trial"]]["objective"][0]
    assert (bad["status"], bad["reports"], bad["steps"]) == ("stopped early", 1, 3)
    assert third["reports"] >= 1 and third["status"] in ("finished", "stopped early")
    for r in rows.values():  # objective = rec_lpips + 1.0 x static_motion (tune/inversion.py)
        assert r["objective"] == pytest.approx(r["rec_lpips"] + r["static_motion"])
    good_curve = curves[good["trial"]]
    assert good_curve["steps"] == [3, 6, 9, 12, 15, 18]
    assert good_curve["objective"][-1] < good_curve["objective"][0]  # the inversion improves as it goes

    # The best settings are an inversion preset over the run's own settings (--set values kept).
    best = min((r for r in rows.values() if r["status"] == "finished"), key=lambda r: r["objective"])
    icfg = inversion_config(load_model(str(tiny_run)).cfg, str(out / "best.toml"))
    assert (icfg.opt_lr, icfg.opt_steps, icfg.finetune_steps) == (best["invert.opt_lr"], 12, 6)
    assert f"best: trial {best['trial']}" in printed
    page = (out / "index.html").read_text()
    assert page.count("<svg") == 2 and page.count('class="trial"') == 3
    assert (out / "results.csv").read_text().count("\n") == 4

    # Another sweep under the same name is refused rather than silently resumed.
    assert script.main([*argv, "--max-photos", "3"], space=learning_rates) == 2
    assert "holds a sweep started with other settings (photos" in capsys.readouterr().err


def test_inversion_sweep_names_what_is_wrong(tiny_run, synth_data, sweep_env, capsys, tmp_path):
    script = load_script("inversion")
    photos = str(synth_data / "photos")
    assert script.main(["--run-dir", str(tmp_path / "no-run"), "--photos", photos]) == 2
    assert "no run directory at" in capsys.readouterr().err
    bare = tmp_path / "bare"  # a photo without its NAME.mask.png
    bare.mkdir()
    (bare / "a.png").write_bytes((synth_data / "photos" / "00000.png").read_bytes())
    assert script.main(["--run-dir", str(tiny_run), "--photos", str(bare)]) == 2
    assert "needs each photo's static region" in capsys.readouterr().err
    assert script.main(["--run-dir", str(tiny_run), "--photos", photos, "--set", "train.total_kimg=1"]) == 2
    assert "may only change invert.* keys" in capsys.readouterr().err
    assert script.main(["--run-dir", str(tiny_run), "--photos", photos],
                       space=lambda base: {"invert.opt_lr": tune.choice([0.1]), "train.crop_prob": 0.5}) == 2
    assert "may only vary invert.* fields" in capsys.readouterr().err


def test_static_motion_measures_what_the_animation_moves_outside_sky_and_water(tiny_run, synth_data, image_stand_ins):
    """Noise maps S_dyn that also cover the static pixels make the time-lapse move them; kept to
    the sky and water (the S of EOIFS) they move them much less (only through the convolutions'
    reach); no S_dyn, nothing moves. (The tiny run's noise inputs are weak: small values.)"""
    run = load_model(str(tiny_run))
    icfg = dataclasses.replace(run.cfg.invert, batch=2, method="EOIFS")
    animator = PhotoAnimator(str(tiny_run), icfg, log=lambda _m: None)
    photos = [animator.read(u) for u in list_photos([str(synth_data / "photos")])[0][:2]]
    lpips = MaskedLPIPS("vgg", "cpu", image_stand_ins / "vgg16-397923af.pth")
    progress = Progress(animator, photos, lpips, InversionObjective(frames=4), 5, lambda _m: None)
    G, r = animator.inverter.G, animator.resolution
    g = torch.Generator().manual_seed(0)
    S_dyn = [3 * torch.randn(2, *s, generator=g) for s in G.noise_shapes(r)]
    S_st = [torch.zeros(2, *s) for s in G.noise_shapes(r)]
    with torch.no_grad():
        ws = animator.inverter.E(torch.stack([torch.from_numpy(np.array(p.square)).permute(2, 0, 1).float() / 127.5 - 1
                                              for p in photos]))

    def motion(S_dyn, keep_dyn):
        progress.keep_dyn = keep_dyn
        return progress.measure(ws, S_st, S_dyn, None)["static_motion"]

    masks = progress.keep_dyn
    everywhere = motion(S_dyn, [torch.ones_like(k) for k in masks])
    only_dynamic = motion([s * k for s, k in zip(S_dyn, masks)], masks)
    assert everywhere > 2 * only_dynamic > 0, (everywhere, only_dynamic)
    assert motion([torch.zeros_like(s) for s in S_dyn], masks) < 1e-9
