"""`deeplandscape animate-bucket`: the bucket job's command line (deeplandscape/invert/bucket.py).

Kept apart from the job so that `deeplandscape --help` does not import torch or pyarrow.

Command-line modules import the features they run inside each handler, so that `--help` and
argument errors answer at once, without loading torch or Ray.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

from deeplandscape.cli_args import path_args, resolve_speed, split_directions
from deeplandscape.invert.cli import add_animation_args, inversion_overrides, video_side


def cmd_animate_bucket(args: argparse.Namespace) -> int:
    from deeplandscape.invert.animate_photos import inversion_config, pick_directions
    from deeplandscape.storage import Retry
    from deeplandscape.invert.bucket import (
        BucketJob, animate_bucket, assign_keys, check_models, finished_keys, list_inputs,
    )
    from deeplandscape.runs import model_settings

    cfg, resolution = model_settings(args.run_dir)
    icfg = inversion_config(cfg, args.inversion, inversion_overrides(args))
    count, directions = split_directions(args.directions)
    pick_directions("check", count, directions)  # bad values fail now, not per photo
    job = BucketJob(args.in_prefix, args.out_prefix, args.run_dir, manifest=args.manifest,
                    homographies=count, directions=directions, frames=args.frames,
                    speed=resolve_speed(args.speed, video_side(args.run_dir, resolution, args.scale, args.superres),
                                        args.fps),
                    horizon=args.horizon, lighting=args.lighting, keyframes=args.keyframes, superres=args.superres,
                    outputs=dict(fps=args.fps, crf=args.crf, scale=args.scale),
                    workers=args.workers, gpu=args.gpu, cpus_per_worker=args.cpus_per_worker,
                    retry=dataclasses.asdict(Retry(args.retries, args.retry_wait)))
    check_models(job, icfg)  # a missing network: one line now, in the dry run too
    if args.dry_run:
        retry = Retry(**job.retry)
        keyed, bad = assign_keys(job.in_prefix, list_inputs(job.in_prefix, job.out_prefix, job.manifest, retry))
        done = finished_keys(job.out_prefix, retry)
        print(json.dumps({"job": dataclasses.asdict(job), "invert": dataclasses.asdict(icfg)}, indent=2))
        print(f"would animate {sum(k not in done for _, k in keyed)} photo(s); {len(done & {k for _, k in keyed})} "
              f"finished earlier; {len(bad)} unusable key(s)")
        return 0
    summary = animate_bucket(job, icfg)
    return 1 if summary["failed"] and not (summary["ok"] or summary["skipped"]) else 0


def add_bucket_parser(sub, speed_type) -> None:
    p = sub.add_parser("animate-bucket", help="animate every photo under a prefix with Ray Data (resumable)")
    p.add_argument("in_prefix", help="folder or s3:// prefix of photos (X.mask.png next to X: its mask)")
    p.add_argument("out_prefix", help="folder or s3:// prefix: OUT/<key>/<direction>.mp4, OUT/_runs/<run id>/")
    p.add_argument("--run-dir", required=True, help="trained run (with RUN/encoder for the E* methods)")
    p.add_argument("--manifest", help="Parquet file with a 'uri' column (all under IN) instead of listing IN")
    add_animation_args(p, speed_type)
    p.add_argument("--workers", type=int, default=1, help="animating actors (one GPU each with --gpu)")
    p.add_argument("--gpu", action="store_true", help="one GPU per actor")
    p.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs per animating actor")
    p.add_argument("--retries", type=int, default=5, help="tries of each storage call (backoff x2 between)")
    p.add_argument("--retry-wait", type=float, default=1.0, help="seconds before the first retry")
    p.add_argument("--dry-run", action="store_true", help="print the settings and what would be done")
    path_args(p, inputs=("IN_PREFIX", "--run-dir", "--manifest", "--segmentation", "--keyframes"),
              outputs=("OUT_PREFIX",))
    p.set_defaults(fn=cmd_animate_bucket)
