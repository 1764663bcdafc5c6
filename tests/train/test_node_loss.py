"""A worker node dies mid-training on a multi-node Ray cluster: with `scale.max_failures=1`
the worker group restarts from the latest checkpoint and the run completes, having lost less
than one checkpoint interval of progress."""

from __future__ import annotations

import json
import re
from pathlib import Path

from deeplandscape.train.checkpoint import list_checkpoints
from tests.fresh_ray import run_script
from tests.train import node_loss_scenario as scenario

SCRIPT = Path(scenario.__file__)


def test_losing_a_worker_node_resumes_from_the_latest_checkpoint(synth_data, tmp_path):
    run_dir = tmp_path / "run"
    done = run_script([str(SCRIPT), str(run_dir), str(synth_data / "photos"), str(synth_data / "videos")],
                      timeout_s=400)
    assert done.returncode == 0, done.stdout[-5000:]
    seen = json.loads(re.search(r"^SCENARIO (\{.*\})$", done.stdout, re.M).group(1))
    assert seen.get("finished") and "error" not in seen and seen["checkpoints_before"], seen

    # One restart, from the newest checkpoint there was once the node was gone; the progress
    # lines go on reaching the driver after the loss.
    resumed = [int(s) for s in re.findall(r"^resumed from \S+ \(step (\d+),", done.stdout, re.M)]
    assert len(resumed) == 1, done.stdout[-5000:]
    assert max(seen["checkpoints_after"]) <= resumed[0] < scenario.TOTAL_STEPS
    logged = [int(s) for s in re.findall(r"^step +(\d+) ", done.stdout, re.M)]
    assert logged and logged[-1] == scenario.TOTAL_STEPS, done.stdout[-5000:]

    # The run completed, and its metrics continue across the restart without gaps or repeats.
    assert list_checkpoints(str(run_dir))[-1].step == scenario.TOTAL_STEPS
    steps = [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(2, scenario.TOTAL_STEPS + 1, 2))
