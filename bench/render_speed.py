"""Frames/s of video rendering (G + homography warp) and encoding, by frames per G batch.

    .venv/bin/python bench/render_speed.py --config tiny --frames 200 --batches 1 4 16 64

Renders the same video (random weights: speed does not depend on them) with each batch size
in one run, with and without H.264 encoding, so the ratios are measured side by side.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from deeplandscape.config import load_config, parse_set
from deeplandscape.nets.generator import Generator
from deeplandscape.render import Animation, render_video
from deeplandscape.video import VideoWriter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, parse_set(args.overrides))
    G = Generator(cfg.model).eval()
    res = cfg.model.resolution
    animation = Animation(speed=2.5)
    print(f"{res} px, {args.frames} frames, {args.threads} threads")
    print(f"{'batch':>5} {'render fps':>10} {'render+encode fps':>17} {'vs batch 1':>10}")
    base = None
    for batch in args.batches:
        for _ in render_video(G, 0, min(batch, args.frames), res, 1.0, animation, batch=batch):
            pass  # warm-up
        start = time.perf_counter()
        for _ in render_video(G, 0, args.frames, res, 1.0, animation, batch=batch):
            pass
        render = args.frames / (time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            with VideoWriter(Path(tmp) / "v.mp4", fps=30, width=res, height=res) as out:
                for chunk in render_video(G, 0, args.frames, res, 1.0, animation, batch=batch):
                    out.write(chunk)
            both = args.frames / (time.perf_counter() - start)
        base = base or both
        print(f"{batch:5d} {render:10.1f} {both:17.1f} {both / base:9.2f}x")


if __name__ == "__main__":
    main()
