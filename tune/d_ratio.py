"""Sweep the D-ratio annealing: how often the pairwise discriminator D_pair is used (paper 3.1).

    python tune/d_ratio.py --config paper128 --images URI --videos URI --storage s3://BUCKET/sweeps \
        --samples 16 [--gpus-per-trial 1] [--set train.total_kimg=2400 ...]

Each trial is one Ray Train run; its objective (below) is reported every `--eval-every` steps
and ASHA stops the trials that trail at equal kimg. Running the same command again resumes an
interrupted sweep. Results: a table (printed, results.csv, results.parquet), best.toml (a
preset for `--config`) and index.html, in `--out` (default sweeps/NAME).
"""

from __future__ import annotations

import argparse
import sys

from ray import tune
from ray.tune.schedulers import ASHAScheduler

from deeplandscape.config import Config, parse_set
from deeplandscape.sweep.common import add_sweep_args, command
from deeplandscape.sweep.d_ratio import DRatioSweep, ObjectiveSettings, run_sweep


def search_space(cfg: Config) -> dict:
    """What a trial varies (config keys). Durations are in kimg, relative to the preset's phase."""
    t = cfg.train
    return {
        "train.p_pair_start": tune.uniform(0.3, 0.7),  # paper: 0.5
        "train.p_pair_end": tune.uniform(0.02, 0.3),  # paper: 0.1
        "train.p_pair_anneal_kimg": tune.uniform(0.1 * t.phase_kimg, t.phase_kimg),  # paper: half a phase
        "train.p_pair_mode": tune.choice(["anneal", "cosine", "step"]),  # anneal = linear (the paper)
        "train.p_pair_restart_per_phase": tune.choice([True, False]),  # paper: restart
        "train.crop_prob": tune.uniform(0.0, 0.8),  # paper: 0.5
    }


# Lower is better. FID and the static LPIPS of pairs that share z_st and S_st (paper Fig. 6);
# with this weight a static-LPIPS gap of 0.01 counts as much as 5 FID points (the paper's
# variants differ by about 8 FID and 0.013 LPIPS).
OBJECTIVE_WEIGHTS = {"fid": 1.0, "static_lpips": 500.0}


def scheduler(cfg: Config) -> ASHAScheduler:
    """ASHA on kimg: the first comparison after an eighth of the run, then at 1/4, 1/2 and the end."""
    total = cfg.train.total_kimg
    return ASHAScheduler(time_attr="kimg", max_t=total, grace_period=total / 8, reduction_factor=2)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="base preset of every trial (configs/NAME or a .toml path)")
    p.add_argument("--images", required=True, help="training photos: folder, s3:// prefix or prepared shards")
    p.add_argument("--videos", required=True, help="training time-lapses")
    p.add_argument("--gpus-per-trial", type=int, default=0, help="Ray Train workers per trial, one GPU each")
    p.add_argument("--eval-every", type=int, default=0, help="training steps between objective reports "
                                                            "(default: the preset's train.log_every)")
    p.add_argument("--fid-samples", type=int, default=500, help="samples of G for FID at each report")
    p.add_argument("--pairs", type=int, default=200, help="pairs for the static LPIPS / SSIM at each report")
    p.add_argument("--masks", choices=["prior", "none"], default="prior",
                   help="static pixels of generated pairs: the real photos' mask prior, or every pixel")
    p.add_argument("--real-images", default="", help="real photos for FID (default: --images)")
    add_sweep_args(p, name="d-ratio", samples=16, storage_default=None, set_example="train.total_kimg=2400")
    return p


def main(argv: list[str] | None = None, space=search_space, schedule=scheduler) -> int:
    """The command; `space` and `schedule` are this file's definitions unless a caller (a test) gives others."""
    args = build_parser().parse_args(argv)

    def sweep() -> None:
        settings = DRatioSweep(preset=args.config, images=args.images, videos=args.videos, storage=args.storage,
                               name=args.name, samples=args.samples, overrides=parse_set(args.overrides),
                               gpus_per_trial=args.gpus_per_trial, max_concurrent=args.max_concurrent,
                               eval_every=args.eval_every, real_images=args.real_images, out=args.out)
        objective = ObjectiveSettings(OBJECTIVE_WEIGHTS, fid_samples=args.fid_samples, pairs=args.pairs,
                                      masks=args.masks)
        run_sweep(settings, space, objective, schedule)

    return command("tune/d_ratio.py", args.samples, sweep)


if __name__ == "__main__":
    sys.exit(main())
