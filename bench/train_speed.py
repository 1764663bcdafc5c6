"""Training images/s of a preset at each progressive resolution, in-process, side by side.

    .venv/bin/python bench/train_speed.py --config tiny --steps 20 --threads 1 2

Prints one row per (resolution, threads): the step time and real images/s. Every (resolution,
threads) arm runs `--repeat` times, interleaved with the others; the minimum and the spread
are printed, and the machine's matmul rate before and after, so a disturbed run shows.
"""

from __future__ import annotations

import argparse
import tempfile

import torch

from deeplandscape.config import load_config, parse_set
from deeplandscape.data.synth import write_dataset
from deeplandscape.data.training import TrainingData
from deeplandscape.train.loop import Trainer
from deeplandscape.train.schedule import global_batch
from machine import Watch, interleaved, spread  # bench/machine.py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=3, help="rounds of every arm, interleaved")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(tmp, images=64, videos=4, frames=16, size=64, seed=0)
        cfg = load_config(args.config, {"data.images": f"{tmp}/photos", "data.videos": f"{tmp}/videos",
                                        **parse_set(args.overrides)})
        data = TrainingData.load(cfg.data.images, cfg.data.videos, cfg.data.load_resolution or 2 * cfg.model.resolution)
        t = cfg.train
        trainers, arms = {}, {}
        res = t.start_resolution
        while res <= cfg.model.resolution:
            phase_start = int(t.phase_kimg * 1000 * (res.bit_length() - t.start_resolution.bit_length()))
            trainer = Trainer(cfg, data)
            # Stable part of the phase (alpha = 1), past the D-ratio anneal.
            trainer.images_seen = phase_start + int(t.fade_kimg * 1000)
            for _ in range(3):
                trainer.train_step()
            for threads in args.threads:
                arms[res, threads] = lambda tr=trainer, n=threads: steps(tr, n, args.steps)
            trainers[res] = trainer
            res *= 2
        with Watch():
            times = interleaved(arms, args.repeat)
        print(f"{'res':>5} {'threads':>7} {'batch':>5} {'s/step':>8} {'spread':>6} {'img/s':>8}")
        for (res, threads), seconds in times.items():
            dt, batch = min(seconds) / args.steps, global_batch(t, res)
            print(f"{res:5d} {threads:7d} {batch:5d} {dt:8.3f} {spread(seconds):6.0%} {batch / dt:8.1f}")


def steps(trainer: Trainer, threads: int, n: int) -> None:
    """n training steps on `threads` torch threads; the trainer stays at its resolution (its
    images_seen is put back), so every round measures the same phase."""
    torch.set_num_threads(threads)
    seen = trainer.images_seen
    for _ in range(n):
        trainer.train_step()
    trainer.images_seen = seen


if __name__ == "__main__":
    main()
