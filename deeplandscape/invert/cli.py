"""`deeplandscape train-encoder` and `deeplandscape animate`: bringing photos to life.

Command-line modules import the features they run inside each handler, so that `--help` and
argument errors answer at once, without loading torch or Ray.
"""

from __future__ import annotations

import argparse

from deeplandscape.cli_args import directions_arg, path_args, resolve_speed, split_directions
from deeplandscape.config import INVERSION_METHODS, parse_set


def cmd_train_encoder(args: argparse.Namespace) -> int:
    from deeplandscape.config import Config, apply_overrides, validate
    from deeplandscape.invert.encoder import train_encoder
    from deeplandscape.runs import encoder_dir
    from deeplandscape.runs import load_model

    cfg = load_model(args.run_dir).cfg  # the run's own settings, invert.* included
    cfg = apply_overrides(Config.from_dict(cfg.to_dict()), parse_set(args.overrides))
    if args.workers:
        cfg.scale.workers = args.workers
    if args.gpu:
        cfg.scale.use_gpu = True
    validate(cfg)
    if args.dry_run:
        print(cfg.to_json())
        return 0
    train_encoder(cfg, args.run_dir, max_steps=args.max_steps)
    print(f"done: encoder checkpoints and metrics.jsonl are in {encoder_dir(args.run_dir)}")
    return 0


def cmd_train_lighting(args: argparse.Namespace) -> int:
    from deeplandscape.config import Config, apply_overrides, validate
    from deeplandscape.invert.lighting import train_lighting
    from deeplandscape.runs import lighting_dir
    from deeplandscape.runs import load_model

    cfg = apply_overrides(Config.from_dict(load_model(args.run_dir).cfg.to_dict()), parse_set(args.overrides))
    validate(cfg)
    report = train_lighting(cfg, args.run_dir, "cuda" if args.gpu else "cpu", max_steps=args.max_steps)
    print(f"done: {report}; A, keyframes.json and metrics.jsonl are in {lighting_dir(args.run_dir)}")
    return 0


def inversion_overrides(args: argparse.Namespace) -> dict[str, str]:
    """`--set`s (invert.* only: the run's model and training are fixed), then `--method`,
    `--segmentation`, `--fit` (see `add_animation_args`)."""
    overrides = parse_set(args.overrides)
    other = sorted(k for k in overrides if not k.startswith("invert."))
    if other:
        raise ValueError(f"--set {other[0]}: only invert.* fields can be set here (the run fixes the rest)")
    for flag, key in (("method", "method"), ("segmentation", "segmentation_model"), ("fit", "fit")):
        if getattr(args, flag):
            overrides[f"invert.{key}"] = getattr(args, flag)
    return overrides


def add_animation_args(p: argparse.ArgumentParser, speed_type) -> None:
    """Inversion and video options shared by `animate` and `animate-bucket`."""
    p.add_argument("--method", choices=["auto", *INVERSION_METHODS],
                   help="inversion steps (paper Fig. 3); auto: EOIFS with a mask, else EOIF")
    p.add_argument("--inversion", help="inversion preset over the run's settings, e.g. inversion-authors")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override an invert.* field, e.g. --set invert.opt_steps=200")
    p.add_argument("--segmentation", help="sky/water masks for photos without X.mask.png: 'ade20k' (the authors' "
                                          "network; the default once `deeplandscape weights fetch ade20k` ran), "
                                          "'none', or a TorchScript file every worker can read (ADE20K class ids)")
    p.add_argument("--fit", choices=["crop", "pad"], help="non-square photos: centre crop (default) or pad and "
                                                         "crop the video back to the photo's shape")
    p.add_argument("--directions", type=directions_arg, default=5,
                   help="videos per photo: a count N (N different clock directions, drawn from the photo's name) "
                        "or comma-separated clock directions and angles, e.g. 3h,9h or 45deg (0deg: right, 90deg: "
                        "up; default: 5, as the paper)")
    p.add_argument("--frames", type=int, default=100, help="frames per video")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate of the mp4s")
    p.add_argument("--speed", type=speed_type, default=2.5,
                   help="motion speed: a factor (x2.5 matches real time-lapses) or pixels per second that the top "
                        "of the sky moves in the video, e.g. 12px/s")
    p.add_argument("--horizon", type=float, help="horizon height as a fraction from the top (default: from the mask)")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality (lower is better)")
    p.add_argument("--scale", type=int, default=1, help="nearest-neighbour upscaling for viewing")
    p.add_argument("--lighting", default="none",
                   help="none | random | day-to-night | cycle | comma-separated keyframe names (needs train-lighting)")
    p.add_argument("--keyframes", help="your own keyframes JSON {name: [z_dyn values]} (default: RUN/lighting/keyframes.json)")
    p.add_argument("--superres", action="store_true",
                   help="x4 super-resolved videos (up to superres.max_size px), static parts guided by the photo "
                        "(needs train-superres); --scale then applies to compare.png only")


def video_side(run_dir: str, resolution: int, scale: int, superres: bool) -> int:
    """The side in pixels of the videos that `animate` and `animate-bucket` write from a run
    rendering at `resolution`."""
    from deeplandscape.superres.resolver import output_side

    return output_side(run_dir, resolution) if superres else resolution * scale


def cmd_animate(args: argparse.Namespace) -> int:
    from deeplandscape.invert.animate_photos import animate_photos, inversion_config
    from deeplandscape.render import VideoOutputs
    from deeplandscape.runs import model_settings

    cfg, resolution = model_settings(args.run_dir)  # the checkpoint's config.json; the weights load later
    icfg = inversion_config(cfg, args.inversion, inversion_overrides(args))
    outputs = VideoOutputs(fps=args.fps, crf=args.crf, scale=args.scale)
    count, directions = split_directions(args.directions)
    speed = resolve_speed(args.speed, video_side(args.run_dir, resolution, args.scale, args.superres), args.fps)
    summary = animate_photos(args.photos, args.run_dir, args.out, homographies=count, frames=args.frames,
                             directions=directions, speed=speed,
                             icfg=icfg, horizon=args.horizon, outputs=outputs,
                             device="cuda" if args.gpu else "cpu", lighting=args.lighting, keyframes=args.keyframes,
                             superres=args.superres)
    return 1 if summary["failed"] and not summary["animated"] else 0


def add_invert_parsers(sub, speed_type) -> None:
    p = sub.add_parser("train-encoder", help="train the inversion encoder E on images sampled from a trained run")
    p.add_argument("--run-dir", required=True, help="trained run; E goes to RUN/encoder and resumes from there")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set invert.encoder_kimg=50 (repeatable)")
    p.add_argument("--workers", type=int, help="Ray Train workers (sets scale.workers)")
    p.add_argument("--gpu", action="store_true", help="one GPU per worker")
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps in this call (0: no limit)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config, do nothing")
    path_args(p, inputs=("--run-dir",))
    p.set_defaults(fn=cmd_train_encoder)

    p = sub.add_parser("train-lighting", help="train the lighting network A from a run's mapping network")
    p.add_argument("--run-dir", required=True, help="trained run; A goes to RUN/lighting and resumes from there")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set invert.lighting_steps=5000 (repeatable)")
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps in this call (0: no limit)")
    p.add_argument("--gpu", action="store_true", help="train on CUDA")
    path_args(p, inputs=("--run-dir",))
    p.set_defaults(fn=cmd_train_lighting)

    p = sub.add_parser("animate", help="invert photos into a trained run and write their time-lapses")
    p.add_argument("photos", nargs="+", help="photos, folders or s3:// prefixes (X.mask.png next to a photo: "
                                             "its sky + water mask, 255 = dynamic)")
    p.add_argument("--run-dir", required=True, help="trained run (with RUN/encoder for the E* methods)")
    p.add_argument("--out", required=True, help="output folder or s3:// prefix: OUT/<photo>/<direction>.mp4 ...")
    add_animation_args(p, speed_type)
    p.add_argument("--gpu", action="store_true", help="run on CUDA")
    # PHOTOS: a missing one is listed in summary.json and the others go on
    path_args(p, inputs=("--run-dir", "--segmentation", "--keyframes"), outputs=("PHOTOS", "--out"))
    p.set_defaults(fn=cmd_animate)
