"""Frames/s of the super-resolution stage of `animate --superres` (paper 3.2, Fig. 5) at 4x.

    .venv/bin/python bench/superres_speed.py --size 256 --frames 8 --paper-frames 1

For 256 px frames -> 1024 px: the RRDB network alone (ESRGAN's paper size, 64 features x 23
RRDBs, and the tiny preset's), the guided-filter blend alone (kornia's colour guided filter,
radius and subsample as configured), and both together through `SuperResolver.upscale`.
Random weights: speed does not depend on them. Also prints the network's FLOPs per frame
(torch.utils.flop_counter) and this machine's float32 matmul rate, to tell how close to the
hardware each figure is. bf16 autocast is used on CUDA (--device cuda), as the animator does.
Every arm runs `--repeat` times, interleaved with the others (minimum and spread printed), and
the machine's matmul rate is printed before and after, so a disturbed run shows.
"""

from __future__ import annotations

import argparse
import dataclasses

import torch
from torch.utils.flop_counter import FlopCounterMode

from deeplandscape.config import SuperResConfig, load_config
from deeplandscape.superres.blend import guided_blend, guided_filter_params
from deeplandscape.superres.nets import SCALE, RRDBNet
from deeplandscape.superres.resolver import SuperResolver
from machine import Watch, interleaved, spread, sync  # bench/machine.py


def timed(fn, device: torch.device):
    """An arm for `interleaved`: one call, synchronised on CUDA."""
    def arm() -> None:
        fn()
        sync(device)
    return arm


def flops_per_frame(net: RRDBNet, size: int) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.zeros(1, 3, size, size))
    return counter.get_total_flops()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256, help="low-res frame side (output: 4x, capped at max_size)")
    ap.add_argument("--frames", type=int, default=8, help="frames per timed call (tiny network, blend)")
    ap.add_argument("--paper-frames", type=int, default=1, help="frames per timed call, paper-size network")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of every arm, interleaved")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    size, out = args.size, min(SCALE * args.size, SuperResConfig().max_size)
    print(f"{size} -> {out} px on {device} ({torch.get_num_threads()} threads), {args.repeat} interleaved rounds")

    defaults = SuperResConfig()
    radius, subsample = guided_filter_params(out, defaults.guided_radius, defaults.guided_subsample)
    sr_frames = torch.rand(args.frames, 3, out, out, device=device) * 2 - 1
    photo = torch.rand(3, out, out, device=device) * 2 - 1
    mask = (torch.rand(1, out, out, device=device) > 0.5).float()
    blend = f"blend alone (r {radius}, subsample {subsample})"
    arms = {blend: timed(lambda: guided_blend(sr_frames, photo, mask, radius, defaults.guided_eps, subsample), device)}
    frames = {blend: args.frames}
    gflop = {}
    for name, cfg, n in (("paper (64 x 23 RRDB)", defaults, args.paper_frames),
                         ("tiny (16 x 1 RRDB)", load_config("tiny").superres, args.frames)):
        net = RRDBNet(cfg.nf, cfg.nb, cfg.gc).eval().requires_grad_(False)
        gflop[f"{name}: network alone"] = flops_per_frame(net, size) / 1e9
        resolver = SuperResolver(net.to(device), dataclasses.replace(cfg, frames_batch=n), device)
        lr = torch.rand(n, 3, size, size, device=device) * 2 - 1
        arms[f"{name}: network alone"] = timed(lambda r=resolver, x=lr: r.super_resolve(x), device)
        arms[f"{name}: network + blend"] = timed(lambda r=resolver, x=lr: r.upscale(x, photo, mask), device)
        frames[f"{name}: network alone"] = frames[f"{name}: network + blend"] = n
    with Watch(device):
        for arm in arms.values():  # warm-up
            arm()
        times = interleaved(arms, args.repeat)
    print(f"{'stage':38s} {'frames/s':>9s} {'s/frame':>8s} {'spread':>6s} {'GFLOP/frame':>12s}")
    for name, t in times.items():
        per_frame = min(t) / frames[name]
        flops = f"{gflop[name]:12.0f}" if name in gflop else ""
        print(f"{name:38s} {1 / per_frame:9.2f} {per_frame:8.3f} {spread(t):6.0%} {flops}")


if __name__ == "__main__":
    main()
