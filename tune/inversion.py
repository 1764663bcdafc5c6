"""Sweep the inversion settings: how photos are brought into a trained run (paper 3.2).

    python tune/inversion.py --run-dir RUN --photos URI --samples 32 [--inversion PRESET] [--set invert.KEY=VALUE]

Each trial inverts the same photos (NAME.mask.png next to each: 255 = sky or water) with its
own settings and reports the objective below every `--report-every` optimisation steps; ASHA
stops the trials that trail at equal steps. Running the same command again resumes an
interrupted sweep. Results: a table (printed, results.csv, results.parquet), best.toml (an
inversion preset for `deeplandscape animate --inversion`) and index.html, in `--out`
(default sweeps/NAME).
"""

from __future__ import annotations

import argparse
import sys

from ray import tune
from ray.tune.schedulers import ASHAScheduler

from deeplandscape.config import InvertConfig, parse_set
from deeplandscape.sweep.common import add_sweep_args, command
from deeplandscape.sweep.inversion import InversionSweep, InversionObjective, run_sweep


def search_space(base: InvertConfig) -> dict:
    """What a trial varies (invert.* keys). Step counts go up to the run's own."""
    return {
        "invert.opt_lr": tune.loguniform(0.01, 0.5),  # O's Adam learning rate; paper 0.1
        "invert.opt_patience": tune.randint(5, 41),  # steps without improvement before halving; paper 20
        "invert.init_weight": tune.loguniform(1e-3, 1.0),  # L_init; paper 0.01, the authors' code 1
        "invert.noise_lr_mult": tune.loguniform(1e-3, 1.0),  # S learns at opt_lr x this; paper 0.01
        "invert.opt_steps": tune.randint(max(1, base.opt_steps // 4), base.opt_steps + 1),
        "invert.finetune_steps": tune.randint(max(1, base.finetune_steps // 4), base.finetune_steps + 1),
        "invert.finetune_lr": tune.loguniform(1e-4, 1e-2),  # F's learning rate; paper 1e-3
        "invert.finetune_perceptual": tune.choice([0.0, 0.1, 1.0, 10.0]),  # F's LPIPS weight; paper 10
    }


# objective = rec_lpips + MOTION_WEIGHT x static_motion (both LPIPS values, lower is better): a
# reconstruction that only looks right because nothing static moves, or a lively animation that
# drags the mountains along, both lose.
MOTION_WEIGHT = 1.0


def scheduler(base: InvertConfig) -> ASHAScheduler:
    """ASHA on optimisation steps: the first comparison after an eighth of the longest trial."""
    longest = base.opt_steps + base.finetune_steps
    return ASHAScheduler(time_attr="steps", max_t=longest, grace_period=max(1, longest // 8), reduction_factor=2)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", required=True, help="trained run with its encoder (deeplandscape train-encoder)")
    p.add_argument("--photos", required=True, nargs="+", help="photos, folders or s3:// prefixes")
    p.add_argument("--inversion", help="inversion preset every trial starts from, e.g. inversion-authors")
    p.add_argument("--report-every", type=int, default=25, help="optimisation steps between reports")
    p.add_argument("--max-photos", type=int, default=8, help="use the first N photos (one batch)")
    p.add_argument("--direction", default="3h", help="clock direction of the animation checked for motion")
    p.add_argument("--frames", type=int, default=8, help="frames of that animation")
    p.add_argument("--cpus-per-trial", type=float, default=1.0)
    p.add_argument("--gpus-per-trial", type=float, default=0.0)
    add_sweep_args(p, name="inversion", samples=32, storage_default="sweeps", set_example="invert.method=EOIF")
    return p


def main(argv: list[str] | None = None, space=search_space, schedule=scheduler) -> int:
    """The command; `space` and `schedule` are this file's definitions unless a caller (a test) gives others."""
    args = build_parser().parse_args(argv)

    def sweep() -> None:
        settings = InversionSweep(run_dir=args.run_dir, photos=args.photos, storage=args.storage, name=args.name,
                                  samples=args.samples, preset=args.inversion, overrides=parse_set(args.overrides),
                                  report_every=args.report_every, max_photos=args.max_photos,
                                  cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                                  max_concurrent=args.max_concurrent, out=args.out)
        objective = InversionObjective(MOTION_WEIGHT, direction=args.direction, frames=args.frames)
        run_sweep(settings, space, objective, schedule)

    return command("tune/inversion.py", args.samples, sweep)


if __name__ == "__main__":
    sys.exit(main())
