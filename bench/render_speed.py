"""Frames/s of video rendering (G + homography warp) and encoding, by frames per G batch.

    .venv/bin/python bench/render_speed.py --config tiny --frames 200 --batches 1 4 16 64

Renders the same video (random weights: speed does not depend on them) with each batch size,
with and without H.264 encoding: every (batch, encode) arm `--repeat` times, interleaved, so
the ratios of the minima are measured side by side; the spread and the machine's matmul rate
before and after show a disturbed run.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from deeplandscape.config import load_config, parse_set
from deeplandscape.nets.generator import Generator
from deeplandscape.render import Animation, render_video
from deeplandscape.video import VideoWriter
from machine import Watch, interleaved, spread  # bench/machine.py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="rounds of every arm, interleaved")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config, parse_set(args.overrides))
    G = Generator(cfg.model).eval()
    res = cfg.model.resolution
    animation = Animation(speed=2.5)

    def render(batch: int) -> None:
        for _ in render_video(G, 0, args.frames, res, 1.0, animation, batch=batch):
            pass

    def render_and_encode(batch: int, tmp: str) -> None:
        with VideoWriter(Path(tmp) / "v.mp4", fps=30, width=res, height=res) as out:
            for chunk in render_video(G, 0, args.frames, res, 1.0, animation, batch=batch):
                out.write(chunk)

    print(f"{res} px, {args.frames} frames, {args.threads} threads, {args.repeat} interleaved rounds")
    with Watch(), tempfile.TemporaryDirectory() as tmp:
        for batch in args.batches:  # warm-up
            for _ in render_video(G, 0, min(batch, args.frames), res, 1.0, animation, batch=batch):
                pass
        arms = {}
        for batch in args.batches:
            arms[f"render {batch}"] = lambda b=batch: render(b)
            arms[f"both {batch}"] = lambda b=batch: render_and_encode(b, tmp)
        times = interleaved(arms, args.repeat)
        print(f"{'batch':>5} {'render fps':>10} {'spread':>6} {'render+encode fps':>17} {'spread':>6} {'vs batch 1':>10}")
        base = None
        for batch in args.batches:
            r, b = times[f"render {batch}"], times[f"both {batch}"]
            both = args.frames / min(b)
            base = base or both
            print(f"{batch:5d} {args.frames / min(r):10.1f} {spread(r):6.0%} {both:17.1f} {spread(b):6.0%} "
                  f"{both / base:9.2f}x")


if __name__ == "__main__":
    main()
