"""Data-parallel training: two Ray Train workers (gloo) compute what one worker computes."""

from __future__ import annotations

import json

import pytest

from deeplandscape.train.checkpoint import latest_checkpoint, load_checkpoint
from deeplandscape.train.launch import train
from deeplandscape.train.loop import Trainer, WorkerContext, run_worker
from tests.conftest import tiny_config


def test_two_workers_match_one_worker_on_the_same_global_batch(local_ray, synth_data, tmp_path):
    overrides = {
        "train.batch": '{"8": 8}', "train.phase_kimg": "0.024", "train.fade_kimg": "0.016",
        "train.max_steps": "6", "train.checkpoint_kimg": "1000", "train.sample_kimg": "0", "train.log_every": "3",
        "scale.cpus_per_worker": "1",
    }
    two = tiny_config(synth_data, **overrides, **{"scale.workers": "2"})
    train(two, str(tmp_path / "two"), log=lambda line: None)
    one = run_worker(tiny_config(synth_data, **overrides), str(tmp_path / "one"), WorkerContext(log=lambda line: None))

    _, progress, state = load_checkpoint(latest_checkpoint(str(tmp_path / "two")).uri)
    assert progress["step"] == 6 and progress["images_seen"] == one.images_seen == 48
    reference = one.state_dict()
    start = Trainer(tiny_config(synth_data, **overrides), one.data, WorkerContext()).state_dict()
    # Same updates up to float summation order. Adam divides by sqrt(v), so where a gradient is
    # near zero a rounding difference becomes a visible weight difference: compare each tensor's
    # difference with how far training moved it (a wrong split of the batch moves it elsewhere).
    for net in ("G", "G_ema", "D_st", "D_pair"):
        for name, value in state[net].items():
            moved = (reference[net][name] - start[net][name]).norm().item()
            apart = (value - reference[net][name]).norm().item()
            assert apart <= 1e-3 * moved + 1e-6, f"{net}.{name}: {apart:.3g} apart after moving {moved:.3g}"

    # Logged losses are global (averaged over workers), so they are what one worker logs.
    lines = {run: [json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
             for run in ("one", "two")}
    assert [m["step"] for m in lines["two"]] == [m["step"] for m in lines["one"]] == [3, 6]
    for one, two in zip(lines["one"], lines["two"]):
        losses = {k: v for k, v in one.items() if k.startswith(("D_", "G_"))}
        assert losses and {k: two[k] for k in losses} == pytest.approx(losses, rel=1e-4, abs=1e-6)
