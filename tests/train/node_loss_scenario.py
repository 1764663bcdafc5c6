"""Lose a worker node mid-training on a multi-node `ray.cluster_utils.Cluster`.

Run by tests/train/test_node_loss.py through tests/fresh_ray.py (a Cluster needs a Ray of
its own). A head with no CPUs (drivers only, as on a real cluster) and two 1-CPU worker
nodes, one Ray Train worker each. When the first checkpoint is in the run directory, one
worker node is killed and a replacement joins, so the restarted worker group has room.

    python tests/train/node_loss_scenario.py RUN_DIR IMAGES VIDEOS

Prints the training log, then one line `SCENARIO {json}` with what was seen at the loss.
"""

from __future__ import annotations

import json
import sys
import threading
import time

CHECKPOINT_STEPS = 4  # a checkpoint every 4 steps of 8 images
TOTAL_STEPS = 20  # the loss comes right after step 4; room for a loaded machine to run on a few steps


def wait_for_checkpoint(run_dir: str, training: threading.Thread, timeout_s: float = 300) -> list[int]:
    from deeplandscape.train.checkpoint import list_checkpoints

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and training.is_alive():
        found = [c.step for c in list_checkpoints(run_dir)]
        if found:
            return found
        time.sleep(0.05)  # polling the run directory, not waiting on a clock
    raise TimeoutError(f"no checkpoint in {run_dir} while training ran ({timeout_s} s at most)")


def lose_a_node(cluster, node, run_dir: str, training: threading.Thread) -> dict:
    """Kill `node` (no graceful shutdown) after the first checkpoint; add a replacement.

    Runs in the main thread: starting a Ray node installs signal handlers."""
    from deeplandscape.train.checkpoint import list_checkpoints

    seen = {"checkpoints_before": wait_for_checkpoint(run_dir, training)}
    cluster.remove_node(node, allow_graceful=False)
    seen["checkpoints_after"] = [c.step for c in list_checkpoints(run_dir)]
    print(f"SCENARIO removed a worker node after checkpoints {seen['checkpoints_after']}", flush=True)
    cluster.add_node(num_cpus=1)
    print("SCENARIO added a replacement node", flush=True)
    return seen


def main(run_dir: str, images: str, videos: str) -> int:
    import ray
    from ray.cluster_utils import Cluster

    from deeplandscape.config import load_config
    from deeplandscape.train.launch import train

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    ray.init(address=cluster.address, log_to_driver=False)  # as ensure_ray: workers' lines come by the relay
    cfg = load_config("tiny", {
        "data.images": images, "data.videos": videos,
        "train.batch": '{"8": 8}', "train.log_every": "2", "train.sample_kimg": "0",
        "train.checkpoint_kimg": str(CHECKPOINT_STEPS * 8 / 1000), "train.total_kimg": str(TOTAL_STEPS * 8 / 1000),
        "scale.workers": "2", "scale.cpus_per_worker": "1", "scale.max_failures": "1",
    })
    outcome: dict = {}

    def run() -> None:
        try:
            train(cfg, run_dir)
            outcome["finished"] = True
        except Exception as e:  # reported by the test, which fails on it
            outcome["error"] = repr(e)

    training = threading.Thread(target=run, daemon=True)
    training.start()
    seen: dict = {}
    try:
        seen = lose_a_node(cluster, workers[0], run_dir, training)
        training.join()
    except Exception as e:
        seen["error"] = repr(e)
    finally:
        print("SCENARIO " + json.dumps({**seen, **outcome}), flush=True)
        ray.shutdown()
        cluster.shutdown()
    return 0 if outcome.get("finished") else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
