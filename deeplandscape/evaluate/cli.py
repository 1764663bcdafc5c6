"""`deeplandscape evaluate ...`: one metric between two collections, or a protocol on a run.

    evaluate fid A B          FID between two image collections (folders, s3:// prefixes, .npz)
    evaluate fvd A B          FVD between two video collections (+ per-frame curves on request)
    evaluate generation       the paper's generation protocol on a trained run (Fig. 6)
    evaluate animation        the paper's animation protocol on a trained run (Fig. 7)

Each prints its values and writes ``metrics.json`` and a self-contained ``index.html`` report
to ``--out``. Features are computed by Ray Data actor pools (``--workers``, ``--gpu``); the
statistics of every folder are cached (``$DEEPLANDSCAPE_STATS_CACHE``), so evaluating again
against the same real set skips it.

Command-line modules import the features they run inside each handler, so that `--help` and
argument errors answer at once, without loading torch or Ray.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from deeplandscape.cli_args import directions_arg, path_args

__all__ = ["add_evaluate_parser"]


def _add_scale_args(p: argparse.ArgumentParser, batch_size: int) -> None:
    p.add_argument("--workers", type=int, default=2, help="Ray Data actors, each loading the networks once")
    p.add_argument("--batch-size", type=int, default=batch_size, help="files (or samples) per actor call")
    p.add_argument("--gpu", action="store_true", help="one GPU per actor")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write cached statistics")


def _compute_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return dict(workers=args.workers, batch_size=args.batch_size, use_gpu=args.gpu)


def _side(info: dict) -> str:
    if info["kind"] == "saved-stats":
        return f"saved statistics of {info['features']} features" if info["features"] else "saved mu and sigma"
    return f"{info['files']} {info['kind']}, statistics {info['cache']}"


def _save_stats(result, directory: str | None) -> list[str]:
    from deeplandscape import storage

    from .pipeline import save_stats

    if not directory:
        return []
    uris = [storage.join(directory, f"{name}.npz") for name in ("a", "b")]
    for stats, uri in zip(result.stats, uris):
        save_stats(stats, uri)
    return uris


def _frechet_report(result, curves: dict | None, out: str, saved: list[str]) -> dict[str, str]:
    from . import report
    from .curves import curve_plots

    name = result.metric.upper()
    metrics = {**result.to_json(), "saved_stats": saved}
    if curves is not None:
        metrics["curves"] = curves
    summary = report.table([(name, result.value), ("A", result.a["source"]), ("A statistics", _side(result.a)),
                            ("B", result.b["source"]), ("B statistics", _side(result.b))])
    sections = [report.Section("Summary", summary),
                report.Section("Settings", report.table(list(result.settings.items()))),
                report.Section("Feature covariance spectra", report.spectrum_plot(
                    {"A": result.stats[0].cov(), "B": result.stats[1].cov()}))]
    if curves is not None:
        sections.append(report.Section("Per frame index (as the paper's Fig. 7)", curve_plots(curves)))
    return report.write_report(out, f"{name} between two collections", metrics, sections)


def cmd_fid(args: argparse.Namespace) -> int:
    from .pipeline import fid

    result = fid(args.a, args.b, resolution=args.resolution, weights_path=args.inception, cache=not args.no_cache,
                 **_compute_kwargs(args))
    saved = _save_stats(result, args.save_stats)
    outputs = _frechet_report(result, None, args.out, saved)
    print(f"FID {result.value:.6f}\n  A: {args.a} ({_side(result.a)})\n  B: {args.b} ({_side(result.b)})")
    for uri in saved:
        print(f"  statistics saved to {uri}")
    print(f"report: {outputs['report']}  metrics: {outputs['metrics']}")
    return 0


def _i3d_path(value: str | None) -> str | None:
    """--i3d: a local file, or a URL fetched once into the weight cache."""
    from . import weights

    if value and "://" in value and not value.startswith("file://"):
        return str(weights.fetch("i3d", url=value))
    return value


def cmd_fvd(args: argparse.Namespace) -> int:
    from .curves import CurveSettings, frame_curves
    from .pipeline import fvd

    result = fvd(args.a, args.b, clip_len=args.clip_len, clip_step=args.clip_step,
                 clips_per_video=args.clips_per_video, weights_path=_i3d_path(args.i3d), cache=not args.no_cache,
                 **_compute_kwargs(args))
    curves = None
    if args.curves_every:
        curves = frame_curves(args.a, args.b, CurveSettings(
            reference=args.curves_reference, every=args.curves_every, max_frames=args.max_frames,
            workers=args.workers, use_gpu=args.gpu))
    saved = _save_stats(result, args.save_stats)
    outputs = _frechet_report(result, curves, args.out, saved)
    print(f"FVD {result.value:.6f}\n  A: {args.a} ({_side(result.a)})\n  B: {args.b} ({_side(result.b)})")
    if curves is not None:
        print("  per-frame means: " + json.dumps(curves["mean_over_frames"]))
    print(f"report: {outputs['report']}  metrics: {outputs['metrics']}")
    return 0


def cmd_generation(args: argparse.Namespace) -> int:
    from deeplandscape import storage

    from .generation import GenerationSettings, MaskSpec, evaluate_generation

    settings = GenerationSettings(pairs=args.pairs, samples=args.samples, seed=args.seed,
                                  masks=MaskSpec.parse(args.masks), lpips_net=args.lpips_net, workers=args.workers,
                                  batch_size=args.batch_size, use_gpu=args.gpu, cache=not args.no_cache)
    out = args.out or storage.join(args.run_dir, "evaluation", "generation")
    m = evaluate_generation(args.run_dir, args.real_images, out, settings)
    print(f"FID {m['fid']:.4f}  LPIPS {m['lpips']:.4f}  SSIM {m['ssim']:.4f}  ({m['pairs']} pairs, {m['samples']} "
          f"samples at {m['model']['resolution']} px; real statistics {m['real']['cache']}; masks: {m['masks']['mode']})")
    print(f"report: {m['outputs']['report']}  metrics: {m['outputs']['metrics']}")
    return 0


def cmd_animation(args: argparse.Namespace) -> int:
    from deeplandscape import storage
    from deeplandscape.config import parse_set
    from deeplandscape.invert.animate_photos import inversion_config
    from deeplandscape.runs import load_model

    from .animation import AnimationSettings, evaluate_animation

    settings = AnimationSettings(frames=args.frames, every=args.every, reference=args.reference,
                                 directions=args.directions if isinstance(args.directions, int)
                                 else tuple(args.directions), speed=args.speed,
                                 lpips_net=args.lpips_net, workers=args.workers, use_gpu=args.gpu)
    icfg = inversion_config(load_model(args.run_dir).cfg, args.inversion,
                            {**parse_set(args.overrides), **({"invert.method": args.method} if args.method else {})})
    out = args.out or storage.join(args.run_dir, "evaluation", "animation")
    m = evaluate_animation(args.run_dir, args.real_videos, out, settings, icfg)
    print("  ".join(f"{k.upper()} {m[k]:.4f}" for k in settings.metrics if m[k] is not None)
          + f"  (mean over {len(m['curves']['frames'])} frame indices; {m['animated']} of {m['videos']} videos "
            f"animated, reference {settings.reference})")
    for f in m["failed"]:
        print(f"  left out {f['input']}: {f['error']}")
    print(f"report: {m['outputs']['report']}  metrics: {m['outputs']['metrics']}")
    return 0


def add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    """Add ``evaluate`` and its sub-commands to the top-level parser's sub-parsers."""
    p = sub.add_parser("evaluate", help="metrics: FID, FVD between collections; the generation protocol on a run",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ev = p.add_subparsers(dest="evaluation", required=True, metavar="EVALUATION")

    q = ev.add_parser("fid", help="FID between two image collections (like python -m pytorch_fid A B, on Ray)")
    q.add_argument("a", help="folder, s3:// prefix or .npz statistics (NAME.mask.png files are skipped)")
    q.add_argument("b", help="folder, s3:// prefix or .npz statistics")
    q.add_argument("--resolution", type=int, help="resize images to R x R (PIL bicubic) first; default: as stored")
    q.add_argument("--inception", help="Inception weight file instead of the cached one (deeplandscape weights status)")
    q.add_argument("--save-stats", metavar="DIR", help="also write the statistics of A and B to DIR/a.npz, DIR/b.npz")
    q.add_argument("--out", default="outputs/evaluate/fid", help="folder for metrics.json and index.html")
    _add_scale_args(q, batch_size=32)
    path_args(q, inputs=("A", "B", "--inception"), outputs=("--save-stats", "--out"))
    q.set_defaults(fn=cmd_fid)

    q = ev.add_parser("fvd", help="FVD between two video collections (I3D on 16-frame clips)")
    q.add_argument("a", help="folder, s3:// prefix or .npz statistics of real videos")
    q.add_argument("b", help="folder, s3:// prefix or .npz statistics of generated videos")
    q.add_argument("--clip-len", type=int, default=16, help="frames per clip")
    q.add_argument("--clip-step", type=int, default=1, help="take every k-th frame within a clip")
    q.add_argument("--clips-per-video", type=int, default=1, help="evenly spaced clips per video, the first at frame 0")
    q.add_argument("--i3d", help="I3D TorchScript file, or a URL fetched once into the weight cache "
                                 "(default: the cached i3d_torchscript.pt; deeplandscape weights fetch i3d)")
    q.add_argument("--curves-every", type=int, default=0, metavar="K",
                   help="also compute FID, LPIPS and SSIM per frame index n = 0, K, 2K, ... (paper Fig. 7)")
    q.add_argument("--curves-reference", choices=["same", "first"], default="same",
                   help="compare generated frame n with real frame n (same) or with real frame 0 (first)")
    q.add_argument("--max-frames", type=int, help="curves: frame indices below this only")
    q.add_argument("--save-stats", metavar="DIR", help="also write the statistics of A and B to DIR/a.npz, DIR/b.npz")
    q.add_argument("--out", default="outputs/evaluate/fvd", help="folder for metrics.json and index.html")
    _add_scale_args(q, batch_size=4)
    path_args(q, inputs=("A", "B", "--i3d"), outputs=("--save-stats", "--out"))
    q.set_defaults(fn=cmd_fvd)

    q = ev.add_parser("generation", help="the generation protocol (paper Fig. 6): FID, static LPIPS and SSIM of pairs")
    q.add_argument("--run-dir", required=True, help="run directory with checkpoints (its EMA generator is used)")
    q.add_argument("--real-images", required=True, help="folder or s3:// prefix of real photos for FID")
    q.add_argument("--pairs", type=int, default=1200, help="pairs sharing z_st, S_st for LPIPS / SSIM (paper: 1200)")
    q.add_argument("--samples", type=int, default=2400, help="generated images for FID")
    q.add_argument("--masks", default="prior",
                   help="static pixels: 'prior' (the real photos' NAME.mask.png averaged: one mask for all samples), "
                        "'segmentation:ade20k' (the authors' network, weights fetch ade20k), "
                        "'segmentation:MODEL.pt' (TorchScript, as the inversion's: ImageNet-normalised image -> "
                        "ADE20K logits; invert.dynamic_classes are masked out) or 'none'")
    q.add_argument("--lpips-net", choices=["vgg", "alex"], default="vgg")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", help="folder for metrics.json and index.html (default RUN/evaluation/generation)")
    _add_scale_args(q, batch_size=16)
    path_args(q, inputs=("--run-dir", "--real-images"), outputs=("--out",))
    q.set_defaults(fn=cmd_generation)

    q = ev.add_parser("animation", help="the animation protocol (paper Fig. 7): animate the first frame of real "
                                        "time-lapses, compare frame by frame")
    q.add_argument("--run-dir", required=True, help="run directory with checkpoints and an encoder (train-encoder)")
    q.add_argument("--real-videos", required=True, help="folder or s3:// prefix of real time-lapses "
                                                        "(NAME.mask.png next to a video: its sky and water)")
    q.add_argument("--frames", type=int, default=32, help="frames of each video compared (and animated)")
    q.add_argument("--every", type=int, default=1, help="frame indices 0, K, 2K, ...")
    q.add_argument("--reference", choices=["same", "first"], default="same",
                   help="compare animated frame n with real frame n (same) or with real frame 0 (first)")
    q.add_argument("--directions", type=directions_arg, default=5,
                   help="homographies per video, one animation each: a count N (N distinct clock directions drawn "
                        "from the video's name; the paper: 5) or a list such as 3h,9h (default 5)")
    q.add_argument("--speed", type=float, default=2.5)
    q.add_argument("--method", help="inversion method (default: the run's invert.method, auto)")
    q.add_argument("--inversion", help="an inversion preset from configs/, e.g. inversion-authors")
    q.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override an invert.* field, e.g. --set invert.opt_steps=200 (repeatable)")
    q.add_argument("--lpips-net", choices=["vgg", "alex"], default="vgg")
    q.add_argument("--out", help="folder for metrics.json, index.html and the videos (default RUN/evaluation/animation)")
    q.add_argument("--workers", type=int, default=2, help="Ray Data actors for the metrics")
    q.add_argument("--gpu", action="store_true", help="invert on CUDA, one GPU per metrics actor")
    path_args(q, inputs=("--run-dir", "--real-videos"), outputs=("--out",))
    q.set_defaults(fn=cmd_animation)
