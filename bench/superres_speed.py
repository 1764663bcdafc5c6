"""Frames/s of the super-resolution stage of `animate --superres` (paper 3.2, Fig. 5) at 4x.

    .venv/bin/python bench/superres_speed.py --size 256 --frames 8 --paper-frames 1

For 256 px frames -> 1024 px: the RRDB network alone (ESRGAN's paper size, 64 features x 23
RRDBs, and the tiny preset's), the guided-filter blend alone (kornia's colour guided filter,
radius and subsample as configured), and both together through `SuperResolver.upscale`.
Random weights: speed does not depend on them. Also prints the network's FLOPs per frame
(torch.utils.flop_counter) and this machine's float32 matmul rate, to tell how close to the
hardware each figure is. bf16 autocast is used on CUDA (--device cuda), as the animator does.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from deeplandscape.config import SuperResConfig, load_config
from deeplandscape.superres.blend import guided_blend, guided_filter_params
from deeplandscape.superres.nets import SCALE, RRDBNet
from deeplandscape.superres.resolver import SuperResolver
from machine import matmul_rate  # bench/machine.py


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, repeat: int, warmup: bool = True) -> float:
    """Seconds per call, after one warm-up call."""
    if warmup:
        fn()
        sync(device)
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync(device)
    return (time.perf_counter() - start) / repeat


def flops_per_frame(net: RRDBNet, size: int) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 3, size, size))
    return counter.get_total_flops()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256, help="low-res frame side (output: 4x, capped at max_size)")
    ap.add_argument("--frames", type=int, default=8, help="frames per timed call (tiny network, blend)")
    ap.add_argument("--paper-frames", type=int, default=1, help="frames per timed call, paper-size network")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    size, out = args.size, min(SCALE * args.size, SuperResConfig().max_size)
    print(f"{size} -> {out} px on {device} ({torch.get_num_threads()} threads); "
          f"float32 matmul {matmul_rate(device) / 1e9:.0f} GFLOP/s")

    defaults = SuperResConfig()
    radius, subsample = guided_filter_params(out, defaults.guided_radius, defaults.guided_subsample)
    sr_frames = torch.rand(args.frames, 3, out, out, device=device) * 2 - 1
    photo = torch.rand(3, out, out, device=device) * 2 - 1
    mask = (torch.rand(1, out, out, device=device) > 0.5).float()
    blend_s = timed(lambda: guided_blend(sr_frames, photo, mask, radius, defaults.guided_eps, subsample), device,
                    args.repeat) / args.frames
    print(f"{'stage':38s} {'frames/s':>9s} {'s/frame':>8s} {'GFLOP/frame':>12s}")
    print(f"{f'blend alone (r {radius}, subsample {subsample})':38s} {1 / blend_s:9.2f} {blend_s:8.3f} {'':>12s}")

    for name, cfg, frames in (("paper (64 x 23 RRDB)", defaults, args.paper_frames),
                              ("tiny (16 x 1 RRDB)", load_config("tiny").superres, args.frames)):
        net = RRDBNet(cfg.nf, cfg.nb, cfg.gc).eval().requires_grad_(False)
        gflop = flops_per_frame(net, size) / 1e9
        resolver = SuperResolver(net.to(device), dataclasses.replace(cfg, frames_batch=frames), device)
        lr = torch.rand(frames, 3, size, size, device=device) * 2 - 1
        net_s = timed(lambda: resolver.super_resolve(lr), device, args.repeat) / frames
        both_s = timed(lambda: resolver.upscale(lr, photo, mask), device, args.repeat, warmup=False) / frames
        print(f"{f'{name}: network alone':38s} {1 / net_s:9.2f} {net_s:8.3f} {gflop:12.0f}")
        print(f"{f'{name}: network + blend':38s} {1 / both_s:9.2f} {both_s:8.3f}")


if __name__ == "__main__":
    main()
