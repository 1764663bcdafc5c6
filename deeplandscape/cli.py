"""`deeplandscape COMMAND ...`: one entry point per user task, all with the same feel.

Each command starts or joins Ray when it needs it (deeplandscape/raykit.py), resolves its
path arguments against the working directory first (deeplandscape/cli_args.py), and stops on
bad input with one line naming the flag or file.

Command-line modules import the features they run inside each handler, so that `--help` and
argument errors answer at once, without loading torch or Ray.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deeplandscape.cli_args import path_args, resolve_path_args, resolve_speed, speed_arg
from deeplandscape.config import load_config, parse_set, preset_names
from deeplandscape.evaluate.cli import add_evaluate_parser
from deeplandscape.invert.bucket_cli import add_bucket_parser
from deeplandscape.invert.cli import add_invert_parsers
from deeplandscape.raykit import WorkerError, for_command_line
from deeplandscape.render import Z_DYN_PATHS
from deeplandscape.superres.cli import add_superres_parser


def _add_config_args(p: argparse.ArgumentParser, default: str | None = "tiny") -> None:
    p.add_argument("--config", default=default,
                   help=f"preset name in configs/ or a .toml path (presets: {', '.join(preset_names())})")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set train.total_kimg=50 (repeatable)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and plan, do nothing")


def cmd_synth(args: argparse.Namespace) -> int:
    from deeplandscape.data.synth import write_dataset

    summary = write_dataset(args.out, images=args.images, videos=args.videos, frames=args.frames,
                            size=args.size, seed=args.seed, fps=args.fps)
    print(f"wrote {summary['num_photos']} photos and {summary['num_videos']} videos "
          f"({args.frames} frames, {args.size} px) with masks to {args.out}; manifest {summary['manifest']}")
    return 0


def _resolutions(value: str) -> list[int]:
    try:
        return [int(r) for r in value.split(",") if r.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"resolutions must be comma-separated integers, got {value!r}") from None


def cmd_prepare(args: argparse.Namespace) -> int:
    from deeplandscape.data.prepare import list_sources, prepare, resolutions_for

    cfg = load_config(args.config, parse_set(args.overrides))
    resolutions = args.resolutions or resolutions_for(cfg.train.start_resolution,
                                                      cfg.data.load_resolution or 2 * cfg.model.resolution)
    if args.dry_run:
        photos, videos = list_sources(args.images, args.videos)
        print(f"would prepare {len(photos)} photos and {len(videos)} videos at {resolutions} px ({args.format}) "
              f"into {args.out}")
        return 0
    m = prepare(args.images or "", args.videos or "", args.out, resolutions, fmt=args.format, quality=args.quality,
                clip_frames=args.clip_frames)
    for s in m["skipped"]:
        print(f"skipped {s['kind']} {s['source']}: {s['reason']}", file=sys.stderr)
    print(f"prepared {m['photos']['prepared']} photos and {m['videos']['prepared']} videos ({m['videos']['frames']} "
          f"frames in {m['videos']['clips']} clips) at {m['resolutions']} px, skipped {len(m['skipped'])} file(s), "
          f"in {m['seconds']} s; manifest {args.out}/manifest.json. Train with --images {args.out}")
    return 0


def _train_config(args: argparse.Namespace):
    overrides = parse_set(args.overrides)
    if args.images:
        overrides["data.images"] = args.images
    if args.videos:
        overrides["data.videos"] = args.videos
    if args.workers:
        overrides["scale.workers"] = str(args.workers)
    if args.gpu:
        overrides["scale.use_gpu"] = "true"
    return load_config(args.config, overrides)


def cmd_train(args: argparse.Namespace) -> int:
    from deeplandscape.train.launch import describe_plan, train

    cfg = _train_config(args)
    if args.dry_run:
        print(cfg.to_json())
        print(describe_plan(cfg))
        return 0
    if train(cfg, args.run_dir) is None:  # a finished run: said so already
        return 0
    samples = " and samples/" if cfg.train.sample_kimg > 0 else ""
    print(f"done: checkpoints/, metrics.jsonl{samples} are in {args.run_dir}")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from deeplandscape.render import VideoOutputs
    from deeplandscape.runs import load_model, model_settings
    from deeplandscape.sample import sample_many, write_samples

    motions = _motions(args.homographies) if args.homographies else None
    outputs = VideoOutputs(fps=args.fps, crf=args.crf, scale=args.scale, poster=not args.no_poster,
                           gif=args.gif, png_frames=args.png_frames)
    args.speed = resolve_speed(args.speed, model_settings(args.run_dir)[1] * args.scale, args.fps)
    if args.workers:
        rows = sample_many(args.run_dir, args.out, args.videos, args.frames, seed=args.seed, direction=args.direction,
                           speed=args.speed, horizon=args.horizon, motions=motions, outputs=outputs,
                           workers=args.workers, use_gpu=args.gpu, z_dyn_path=args.z_dyn_path)
        failed = [r for r in rows if r["error"]]
        for r in failed:
            print(f"failed: seed {r['seed']}: {r['error']}", file=sys.stderr)
        print(f"wrote {len(rows) - len(failed)} videos ({len(failed)} failed), grid.png and manifest.parquet "
              f"to {args.out}")
        return 1 if failed else 0
    model = load_model(args.run_dir)
    summary = write_samples(model, args.out, videos=args.videos, frames=args.frames, seed=args.seed,
                            direction=args.direction, speed=args.speed, horizon=args.horizon, motions=motions,
                            outputs=outputs, z_dyn_path=args.z_dyn_path)
    print(f"wrote {len(summary['videos'])} videos, grid.png and manifest.parquet "
          f"({model.resolution} px model at {model.kimg:.1f} kimg) to {args.out}")
    return 0


def cmd_import_authors(args: argparse.Namespace) -> int:
    from deeplandscape.authors.importer import import_authors

    report = import_authors(args.source, args.resolution, args.run_dir, config=args.config,
                            overrides=parse_set(args.overrides), encoder=args.encoder, lighting=args.lighting,
                            superres=args.superres)
    animate = f"deeplandscape animate PHOTO --run-dir {args.run_dir} --out videos"
    print(f"sample it: deeplandscape sample --run-dir {args.run_dir} --out samples; animate a photo: "
          + (animate if report.encoder else f"deeplandscape train-encoder --run-dir {args.run_dir}, then {animate}"))
    return 0


def _motions(path: str):
    """--homographies: our motions JSON, or a folder of the authors' CSVs."""
    from deeplandscape.animate.homography import load_motions
    from deeplandscape.authors.homographies import read_authors_motions

    return read_authors_motions(path) if Path(path).is_dir() else load_motions(path)


def cmd_calibrate_motion(args: argparse.Namespace) -> int:
    from deeplandscape.animate.calibrate import run_calibration

    summary = run_calibration(args.videos, args.out, masks_uri=args.masks, n_dominant=args.dominant)
    print(json.dumps(summary, indent=2))
    print(f"wrote the motions to {args.out} (use: deeplandscape sample --homographies {args.out}) "
          f"and the per-video measurements to {summary['report']}")
    return 0


def cmd_weights(args: argparse.Namespace) -> int:
    from deeplandscape.evaluate import weights

    if args.action == "status":
        for row in weights.status():
            state = f"present ({row['size_bytes'] / 2**20:.0f} MiB)" if row["present"] else "MISSING"
            print(f"{row['name']:10s} {state:18s} {row['path']}\n{'':10s} {row['purpose']}\n{'':10s} from {row['url']}")
        print(f"cache: {weights.cache_dir()} (set DEEPLANDSCAPE_WEIGHTS to change it)")
        return 0
    names = weights.expand(args.names) or [r["name"] for r in weights.status() if not r["present"]]
    failed = 0
    for name in names:
        try:
            print(f"{name}: {weights.fetch(name)}")
        except (RuntimeError, ValueError, KeyError) as e:
            print(f"{name}: {e}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from deeplandscape.demo import run_demo

    overrides = parse_set(args.overrides)
    if args.dry_run:
        cfg = load_config(args.config, overrides)
        print(cfg.to_json())
        return 0
    index = run_demo(Path(args.out), args.config, overrides)
    print(f"gallery: {index}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deeplandscape",
                                     description="DeepLandscape on Ray: train, sample, animate and evaluate "
                                                 "landscape time-lapse GANs. `deeplandscape COMMAND --help` for each.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("synth", help="write a procedural landscape data set")
    p.add_argument("out", help="output folder")
    p.add_argument("--images", type=int, default=256, help="number of photos")
    p.add_argument("--videos", type=int, default=32, help="number of time-lapse videos")
    p.add_argument("--frames", type=int, default=32, help="frames per video")
    p.add_argument("--size", type=int, default=64, help="side in pixels (even)")
    p.add_argument("--fps", type=float, default=15.0, help="frame rate of the time-lapses")
    p.add_argument("--seed", type=int, default=0, help="random seed of the scenes")
    path_args(p, outputs=("OUT",))
    p.set_defaults(fn=cmd_synth)

    p = sub.add_parser("prepare", help="raw photos and time-lapses -> training shards (Parquet) with Ray Data")
    _add_config_args(p)
    p.add_argument("--images", help="folder or s3:// prefix of photos")
    p.add_argument("--videos", help="folder or s3:// prefix of time-lapse videos")
    p.add_argument("--out", required=True, help="folder or s3:// prefix for the shards and manifest.json")
    p.add_argument("--resolutions", type=_resolutions,
                   help="e.g. 8,16,32,64 (default: train.start_resolution up to the config's load resolution)")
    p.add_argument("--format", choices=["png", "jpeg"], default="png", help="image encoding in the shards")
    p.add_argument("--quality", type=int, default=95, help="JPEG quality")
    p.add_argument("--clip-frames", type=int, default=16, help="frames of one video per row (pairs come from a row)")
    path_args(p, inputs=("--images", "--videos"), outputs=("--out",))
    p.set_defaults(fn=cmd_prepare)

    p = sub.add_parser("train", help="train DeepLandscape under Ray Train (resumes from --run-dir)")
    _add_config_args(p)
    p.add_argument("--images", help="folder or s3:// prefix of photos (sets data.images)")
    p.add_argument("--videos", help="folder or s3:// prefix of time-lapse mp4s (sets data.videos)")
    p.add_argument("--run-dir", required=True, help="run directory; an existing one is resumed")
    p.add_argument("--workers", type=int, help="Ray Train workers (sets scale.workers)")
    p.add_argument("--gpu", action="store_true", help="one GPU per worker (sets scale.use_gpu)")
    path_args(p, inputs=("--images", "--videos"), outputs=("--run-dir",))
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("sample", help="render time-lapse videos from a trained run")
    p.add_argument("--run-dir", required=True, help="run directory with checkpoints")
    p.add_argument("--out", required=True, help="output folder for mp4s, posters and grid.png")
    p.add_argument("--videos", type=int, default=4, help="number of videos")
    p.add_argument("--frames", type=int, default=100, help="frames per video")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate of the mp4s")
    p.add_argument("--seed", type=int, default=0, help="video i uses seed + i (its z_st, S_st and z_dyn path)")
    p.add_argument("--direction", default="random",
                   help="S_dyn motion: a clock direction 1h..12h (3h: right, 12h: up and towards the viewer), "
                        "an angle in degrees (0deg: right, 90deg: up, 45deg between), a name from --homographies, "
                        "or 'random' (one clock direction per video)")
    p.add_argument("--speed", type=speed_arg, default=1.0,
                   help="motion speed: a factor (2.5, or x0.5, x1, x2.5, x4) or pixels per second that the top of "
                        "the sky moves at the output size, e.g. 12px/s")
    p.add_argument("--horizon", type=float, default=0.5, help="horizon height, fraction of the image from the top")
    p.add_argument("--z-dyn-path", choices=Z_DYN_PATHS, default="slerp",
                   help="how z_dyn goes from one sample to the other over a video (slerp: the authors' code)")
    p.add_argument("--homographies", help="JSON file of your own motions (see deeplandscape/animate/homography.py) "
                                          "or a folder of the authors' CSVs (their homographies/<set>/)")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality (lower is better)")
    p.add_argument("--scale", type=int, default=1, help="nearest-neighbour upscaling for viewing")
    p.add_argument("--no-poster", action="store_true", help="skip the poster JPEG per video")
    p.add_argument("--gif", action="store_true", help="also write a GIF preview per video")
    p.add_argument("--png-frames", action="store_true", help="also write every frame as PNG")
    p.add_argument("--workers", type=int, default=0,
                   help="render with Ray Data on this many actors (many videos; --out may be s3://)")
    p.add_argument("--gpu", action="store_true", help="one GPU per Ray Data actor")
    path_args(p, inputs=("--run-dir", "--homographies"), outputs=("--out",))
    p.set_defaults(fn=cmd_sample)

    add_invert_parsers(sub, speed_arg)
    add_bucket_parser(sub, speed_arg)  # deeplandscape/invert/bucket_cli.py
    add_superres_parser(sub)  # deeplandscape/superres/cli.py

    p = sub.add_parser("import-authors", help="the authors' released generator (a .model file or their results/ "
                                              "folder) as a run directory")
    p.add_argument("source", help="their results/ folder (checkpoints/<R>/NNNNNN.model inside) or one .model file")
    p.add_argument("--resolution", type=int, required=True, help="import the levels up to this resolution (px)")
    p.add_argument("--run-dir", required=True, help="new run directory to write")
    p.add_argument("--encoder", help="their encoder file (default: encoders/<R>_resnet/models/best_model.pth "
                                     "in the folder, if there)")
    p.add_argument("--lighting", help="their lighting network file (default: encoders/<R>_mlp/models/"
                                      "best_model.pth in the folder, if there)")
    p.add_argument("--superres", help="their super-resolution file, G.pth (its RRDB network is imported)")
    p.add_argument("--config", help="preset for the non-model settings (default: paper<R>, else paper256)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field of the written run")
    path_args(p, inputs=("source", "--encoder", "--lighting", "--superres"), outputs=("--run-dir",))
    p.set_defaults(fn=cmd_import_authors)

    p = sub.add_parser("calibrate-motion", help="measure cloud motion in time-lapses; write the 12 directions at that speed")
    p.add_argument("--videos", required=True, help="folder or s3:// prefix of time-lapse videos")
    p.add_argument("--masks", help="folder of NAME.mask.png dynamic-region masks (default: next to the videos)")
    p.add_argument("--out", required=True, help="motions JSON to write (a NAME.report.json goes next to it)")
    p.add_argument("--dominant", type=int, default=3, help="measured dominant directions to add as extra entries")
    path_args(p, inputs=("--videos", "--masks"), outputs=("--out",))
    p.set_defaults(fn=cmd_calibrate_motion)

    p = sub.add_parser("weights", help="pretrained files the metrics and masks use: what is present, fetch the rest")
    p.add_argument("action", choices=["status", "fetch"])
    p.add_argument("names", nargs="*", help="files to fetch, e.g. inception, ade20k (default: every missing one)")
    p.set_defaults(fn=cmd_weights)

    p = sub.add_parser("demo", help="synth -> train -> sample -> gallery on a local Ray")
    _add_config_args(p)
    p.add_argument("--out", default="outputs/demo", help="output folder (index.html goes here)")
    path_args(p, outputs=("--out",))
    p.set_defaults(fn=cmd_demo)

    add_evaluate_parser(sub)  # deeplandscape/evaluate/cli.py
    return parser


def main(argv: list[str] | None = None, from_shell: bool | None = None) -> int:
    """`deeplandscape ARGV`. `from_shell` (default: when argv comes from sys.argv): a process of
    its own, whose stderr may be rearranged when Ray starts (raykit.for_command_line)."""
    args = build_parser().parse_args(argv)
    if from_shell or (from_shell is None and argv is None):
        for_command_line()
    try:
        resolve_path_args(args)
        return args.fn(args)
    except (ValueError, FileNotFoundError, WorkerError) as e:  # bad input, a missing file, a worker's error
        print(f"deeplandscape {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
