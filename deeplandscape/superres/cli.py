"""`deeplandscape train-superres`: the SR network of paper 3.2 for a trained run.

Command-line modules import the features they run inside each handler, so that `--help` and
argument errors answer at once, without loading torch or Ray.
"""

from __future__ import annotations

import argparse

from deeplandscape.cli_args import path_args
from deeplandscape.config import parse_set


def superres_config(run_dir: str, preset: str | None, overrides: list[str]):
    """The run's own config, then a preset's [superres] section, then `--set`s."""
    from deeplandscape.config import Config, apply_overrides, read_preset, validate
    from deeplandscape.runs import load_model
    from deeplandscape.superres.train import validate_superres

    cfg = Config.from_dict(load_model(run_dir).cfg.to_dict())  # the run's settings, invert.* and superres.* included
    if preset:
        keys = read_preset(preset)
        apply_overrides(cfg, {k: v for k, v in keys.items() if k.startswith("superres.")})
    apply_overrides(cfg, parse_set(overrides))
    validate(cfg)
    validate_superres(cfg.superres)
    return cfg


def cmd_train_superres(args: argparse.Namespace) -> int:
    from deeplandscape.runs import superres_dir
    from deeplandscape.superres.train import train_superres

    cfg = superres_config(args.run_dir, args.config, args.overrides)
    if args.workers:
        cfg.scale.workers = args.workers
    if args.gpu:
        cfg.scale.use_gpu = True
    if args.dry_run:
        print(cfg.to_json())
        return 0
    train_superres(cfg, args.run_dir, args.videos, max_steps=args.max_steps, rebuild_pairs=args.rebuild_pairs)
    print(f"done: pairs, SR checkpoints and metrics.jsonl are in {superres_dir(args.run_dir)}")
    return 0


def add_superres_parser(sub) -> None:
    p = sub.add_parser("train-superres", help="train the x4 super-resolution network (ESRGAN) of a trained run")
    p.add_argument("--run-dir", required=True, help="trained run (with RUN/encoder); SR goes to RUN/superres and "
                                                    "resumes from there")
    p.add_argument("--videos", required=True, help="folder or s3:// prefix of time-lapse videos whose frames are at "
                                                   "least 4x the run's resolution (1024 px for a 256 px run)")
    p.add_argument("--config", help="preset whose [superres] section applies over the run's settings (e.g. tiny)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set superres.psnr_steps=20000 (repeatable)")
    p.add_argument("--workers", type=int, help="Ray Train workers (sets scale.workers)")
    p.add_argument("--gpu", action="store_true", help="one GPU per worker")
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps in this call (0: no limit)")
    p.add_argument("--rebuild-pairs", action="store_true",
                   help="delete RUN/superres/pairs and build them again (after G or E changed)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config, do nothing")
    path_args(p, inputs=("--run-dir", "--videos"))
    p.set_defaults(fn=cmd_train_superres)
