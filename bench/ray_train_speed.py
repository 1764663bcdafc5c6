"""Training images/s in-process vs under Ray Train with 1 and 2 workers, side by side in one run.

    .venv/bin/python bench/ray_train_speed.py --resolution 16 --steps 60 --log-every 10
    .venv/bin/python bench/ray_train_speed.py --cpus-per-worker 1    # 1 thread everywhere

Runs the same `run_worker` (tiny preset, one resolution, alpha = 1, the in-memory data) three
ways on one local Ray of `--cpus` CPUs: in this process; under Ray Train with 1 worker; with
2 workers (the global batch split between them, gloo all-reduce); `--repeat` rounds of the
three, interleaved, the best of each printed with its spread, and the machine's matmul rate
before and after. By default the workers share the
CPUs (1 worker x 2 threads vs 2 workers x 1 thread; in-process 2 threads); with
`--cpus-per-worker 1` every worker and the in-process run use one thread, so 2 workers use
twice the CPUs of one (data-parallel scaling). On a machine loaded by other processes,
several torch threads in one process slow down badly (they wait for each other), so the
second form is the one that stays meaningful there. Steady images/s is the median of the logged windows
after the first (warm-up); wall time includes Ray Train's start-up and data loading.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

from machine import Watch, spread  # bench/machine.py

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def config(images: str, videos: str, args: argparse.Namespace, workers: int):
    from deeplandscape.config import load_config

    return load_config("tiny", {
        "data.images": images, "data.videos": videos,
        "train.start_resolution": str(args.resolution), "train.phase_kimg": "1000", "train.total_kimg": "1000",
        "train.max_steps": str(args.steps), "train.log_every": str(args.log_every),
        "train.checkpoint_kimg": "1000", "train.sample_kimg": "0",
        "scale.workers": str(workers), "scale.cpus_per_worker": str(threads_per_worker(args, workers)),
    })


def threads_per_worker(args: argparse.Namespace, workers: int) -> int:
    return args.cpus_per_worker or args.cpus // workers


def steady_images_per_s(run_dir: str) -> float:
    lines = [json.loads(line) for line in open(os.path.join(run_dir, "metrics.jsonl"))]
    return statistics.median(m["images_per_s"] for m in lines[1:])


def in_process(images: str, videos: str, args: argparse.Namespace, run_dir: str) -> tuple[float, float]:
    import torch

    from deeplandscape.train.loop import WorkerContext, run_worker

    torch.set_num_threads(threads_per_worker(args, 1))
    start = time.perf_counter()
    run_worker(config(images, videos, args, 1), run_dir, WorkerContext(log=lambda line: None))
    return steady_images_per_s(run_dir), time.perf_counter() - start


def under_ray_train(images: str, videos: str, args: argparse.Namespace, run_dir: str, workers: int):
    from deeplandscape.train.launch import train

    start = time.perf_counter()
    train(config(images, videos, args, workers), run_dir, log=lambda line: None)
    return steady_images_per_s(run_dir), time.perf_counter() - start


def main() -> None:
    import ray

    from deeplandscape.data.synth import write_dataset
    from deeplandscape.train.schedule import global_batch

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--resolution", type=int, default=16)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    ap.add_argument("--cpus-per-worker", type=int, default=0, help="threads per worker (0: --cpus / workers)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of the three arms, interleaved")
    args = ap.parse_args()
    arms = {"in-process": lambda d, run: in_process(*d, run),
            "Ray Train, 1 worker": lambda d, run: under_ray_train(*d, run, 1),
            "Ray Train, 2 workers": lambda d, run: under_ray_train(*d, run, 2)}
    got: dict[str, list[tuple[float, float]]] = {name: [] for name in arms}
    with tempfile.TemporaryDirectory() as tmp, Watch():
        write_dataset(tmp, images=64, videos=4, frames=16, size=64, seed=0)
        data = (f"{tmp}/photos", f"{tmp}/videos", args)
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
        for i in range(args.repeat):
            for k, (name, arm) in enumerate(arms.items()):
                got[name].append(arm(data, f"{tmp}/{i}-{k}"))
        ray.shutdown()
    batch = global_batch(config(*data, 1).train, args.resolution)
    print(f"tiny preset, {args.resolution} px, global batch {batch}, {args.steps} steps, Ray with {args.cpus} CPUs, "
          f"threads per worker: 1 worker {threads_per_worker(args, 1)}, 2 workers {threads_per_worker(args, 2)}; "
          f"{args.repeat} interleaved rounds, the best of each")
    print(f"{'':22s} {'img/s':>7s} {'spread':>6s} {'vs in-process':>13s} {'wall s':>7s}")
    base = max(speed for speed, _ in got["in-process"])
    for name, rows in got.items():
        speeds = [speed for speed, _ in rows]
        best = max(speeds)
        print(f"{name:22s} {best:7.1f} {spread([1 / x for x in speeds]):6.0%} {best / base:12.2f}x "
              f"{min(wall for _, wall in rows):7.1f}")


if __name__ == "__main__":
    main()
