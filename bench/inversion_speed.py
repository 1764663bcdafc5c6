"""Photos/s of batched inversion (B photos at once) vs one photo at a time, at equal steps.

    .venv/bin/python bench/inversion_speed.py --config tiny --photos 8 --batch 8 --steps 20

Both arms invert the same photos with the same O and F step counts (EOIF; random weights:
speed does not depend on them), interleaved `--repeat` times in this process (one, batched,
one, batched, ...), so the ratio of their minima is measured side by side; the spread of each
arm and the machine's matmul rate before and after show whether the run was disturbed. Also
prints the FLOPs per photo (torch.utils.flop_counter, one O and one F step, times the step
counts) against the matmul rate.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from deeplandscape.config import load_config, parse_set
from deeplandscape.invert.encoder import build_encoder, mean_w
from deeplandscape.invert.inversion import Inverter, per_photo_l1, run_generator, synthesis_names
from deeplandscape.nets.generator import Generator
from machine import Watch, interleaved, spread  # bench/machine.py


def timed_invert(inverter: Inverter, photos: torch.Tensor, batch: int) -> float:
    start = time.perf_counter()
    for i in range(0, len(photos), batch):
        inverter.invert(photos[i : i + batch], "EOIF")
    return time.perf_counter() - start


def flops_per_photo(inverter: Inverter, photo: torch.Tensor) -> tuple[float, float]:
    """(O FLOPs, F FLOPs) per photo: one forward + backward of each step kind, counted with
    torch.utils.flop_counter, times the step counts (Adam's element-wise updates not counted)."""
    G, res, cfg, device = inverter.G, inverter.resolution, inverter.cfg, inverter.device
    shapes = G.noise_shapes(res)
    ws = torch.zeros(1, G.num_levels, G.cfg.w_dim, requires_grad=True, device=device)
    S = [torch.zeros(1, *s, requires_grad=True, device=device) for s in shapes]
    with FlopCounterMode(display=False) as counter:
        per_photo_l1(run_generator(G, ws, S, S, res, 1.0), photo).sum().backward()
    o_step = counter.get_total_flops()
    own = dict(G.named_parameters())
    params = {n: own[n].detach()[None].clone().requires_grad_() for n in synthesis_names(G)}
    with FlopCounterMode(display=False) as counter:
        per_photo_l1(run_generator(G, ws.detach(), S, S, res, 1.0, params), photo).sum().backward()
    return o_step * cfg.opt_steps, counter.get_total_flops() * cfg.finetune_steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="tiny")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--photos", type=int, default=8)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20, help="O steps and F steps per photo")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="rounds of the two arms, interleaved")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = load_config(args.config, parse_set(args.overrides))
    icfg = dataclasses.replace(cfg.invert, opt_steps=args.steps, finetune_steps=args.steps, opt_patience=10**9,
                               opt_perceptual=0.0, finetune_perceptual=0.0)
    G = Generator(cfg.model).eval().requires_grad_(False)
    E = build_encoder(cfg, pretrained=False).eval().requires_grad_(False)
    E.w_avg.copy_(mean_w(G))
    res = cfg.model.resolution
    inverter = Inverter(G, res, 1.0, icfg, E)
    photos = torch.rand(args.photos, 3, res, res) * 2 - 1
    print(f"{res} px, {args.photos} photos, {args.steps} O + {args.steps} F steps each (EOIF, L1 only), "
          f"{args.threads} threads, {args.repeat} interleaved rounds")
    with Watch() as watch:
        timed_invert(inverter, photos[:1], 1)  # warm-up
        times = interleaved({"one": lambda: timed_invert(inverter, photos, 1),
                             "batched": lambda: timed_invert(inverter, photos, args.batch)}, args.repeat)
        one, batched = min(times["one"]), min(times["batched"])
        print(f"one at a time : {args.photos / one:7.2f} photos/s (min {one:.1f} s, spread {spread(times['one']):.0%})")
        print(f"batched B={args.batch:<3d}: {args.photos / batched:7.2f} photos/s (min {batched:.1f} s, "
              f"spread {spread(times['batched']):.0%})  -> {one / batched:.2f}x")
        o_flops, f_flops = flops_per_photo(inverter, photos[:1])
    per_photo = o_flops + f_flops
    rate = max(watch.before, watch.after)
    print(f"FLOPs per photo: O {o_flops / 1e9:.2f} G + F {f_flops / 1e9:.2f} G = {per_photo / 1e9:.2f} GFLOP")
    print(f"batched inversion runs at {per_photo * args.photos / batched / rate:.1%} of the quieter matmul rate, "
          f"one-at-a-time at {per_photo * args.photos / one / rate:.1%}")


if __name__ == "__main__":
    main()
