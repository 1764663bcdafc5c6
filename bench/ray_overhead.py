"""Training speed in-process vs inside a Ray worker with the same CPUs, side by side.

    .venv/bin/python bench/ray_overhead.py --steps 15 --resolution 16

Runs the same training steps (tiny preset) three ways: in this process, in a Ray task holding
2 CPUs, and in this process again while Ray is running; `--repeat` rounds of the three,
interleaved (Ray started and stopped in each round), the best of each printed with its spread,
and the machine's matmul rate before and after. The ratio is the cost of running under Ray on
this machine (workers at nice 15, Ray's own processes).
"""

from __future__ import annotations

import argparse
import os
import tempfile

from machine import Watch, spread  # bench/machine.py

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def steps_per_second(images: str, videos: str, resolution: int, steps: int) -> float:
    import time

    import torch

    from deeplandscape.config import load_config
    from deeplandscape.data.training import TrainingData
    from deeplandscape.train.loop import Trainer
    from deeplandscape.train.schedule import global_batch, phase_at

    torch.set_num_threads(2)
    cfg = load_config("tiny", {"data.images": images, "data.videos": videos})
    data = TrainingData.load(images, videos, 64)
    trainer = Trainer(cfg, data)
    t = cfg.train
    k = resolution.bit_length() - t.start_resolution.bit_length()
    trainer.images_seen = int(k * t.phase_kimg * 1000 + t.fade_kimg * 1000)  # stable part of the phase
    assert phase_at(trainer.images_seen, t, cfg.model.resolution).resolution == resolution
    for _ in range(3):
        trainer.train_step()
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    return steps * global_batch(t, resolution) / (time.perf_counter() - start)


def main() -> None:
    import ray

    from deeplandscape.data.synth import write_dataset

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--resolution", type=int, default=16)
    ap.add_argument("--repeat", type=int, default=3, help="rounds of the three arms, interleaved")
    args = ap.parse_args()
    rates: dict[str, list[float]] = {"in-process": [], "Ray task (2 CPUs)": [], "in-process with Ray up": []}
    with tempfile.TemporaryDirectory() as tmp, Watch():
        write_dataset(tmp, images=64, videos=4, frames=16, size=64, seed=0)
        run = (f"{tmp}/photos", f"{tmp}/videos", args.resolution, args.steps)
        for _ in range(args.repeat):
            rates["in-process"].append(steps_per_second(*run))
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
            rates["Ray task (2 CPUs)"].append(ray.get(ray.remote(num_cpus=2)(steps_per_second).remote(*run)))
            rates["in-process with Ray up"].append(steps_per_second(*run))
            ray.shutdown()
    print(f"{args.resolution} px, {args.steps} steps, {args.repeat} interleaved rounds; img/s, best of the rounds "
          "(time spread):")
    base = max(rates["in-process"])
    for name, r in rates.items():
        print(f"  {name:24s} {max(r):7.1f} ({max(r) / base:.2f}x), spread {spread([1 / x for x in r]):.0%}")


if __name__ == "__main__":
    main()
