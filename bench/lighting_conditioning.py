"""How close the lighting network A gets to M, and why it cannot on a deep random M.

    .venv/bin/python bench/lighting_conditioning.py [--layers 1 2 4] [--steps 3000] [--width 256]

For each mapping depth, builds a fresh tiny M (configs/tiny.toml, seed 0) and prints:
- the condition number of each of its linear layers;
- the error of inverting M exactly (layer by layer) and applying it again, in float64 and in
  float32: the information A needs is in w_a, but only as far as float32 can read it;
- the errors of A (the tiny preset's A, `--width` wide) after `--steps` steps.

Errors are relative to the displacement |w_b - w_a| (`lighting_errors`): 0 is exact, 1 is as
far as not moving at all. Single-threaded and CPU-only, so it runs the same on any machine.
"""

from __future__ import annotations

import argparse
import time

import torch

from deeplandscape.config import load_config
from deeplandscape.invert.lighting import LightingNet, build_lighting, lighting_errors, lighting_step
from deeplandscape.nets.generator import Generator
from deeplandscape.nets.layers import EqualLinear
from deeplandscape.train.latents import step_generator


def exact_inverse_error(G: Generator, dtype: torch.dtype, samples: int = 4096) -> float:
    """|M(z_st recovered from w_a, z_b) - w_b| / |w_b - w_a| with M inverted exactly in `dtype`;
    the recovered pixel-normed z stands in for z (PixelNorm drops its norm)."""
    gen = torch.Generator().manual_seed(1)
    M = G.M.double()
    z_st = torch.randn(samples, G.z_st_dim, generator=gen, dtype=torch.float64)
    z_a, z_b = torch.randn(2, samples, G.cfg.z_dyn_dim, generator=gen, dtype=torch.float64)
    w_a, w_b = M(torch.cat([z_st, z_a], 1)), M(torch.cat([z_st, z_b], 1))
    x = w_a.to(dtype)
    for lin in reversed([m for m in M.net if isinstance(m, EqualLinear)]):
        x = LightingNet.pre_activation(x)
        W, b = (lin.weight * lin.w_scale).to(dtype), (lin.bias * lin.lr_mul).to(dtype)
        x = torch.linalg.solve(W, (x - b).T).T
    pred = M(torch.cat([x.double()[:, :G.z_st_dim], z_b], 1))
    G.M.float()
    return float((pred - w_b).norm(dim=1).mean() / (w_b - w_a).norm(dim=1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--width", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'layers':>6}  {'layer condition numbers':<28} {'inverse f64':>11} {'inverse f32':>11}  "
          f"{'A target':>8} {'A midpoint':>10} {'A cosine':>8}  {'s':>4}")
    for layers in args.layers:
        cfg = load_config("tiny", {"model.mapping_layers": layers, "invert.lighting_width": args.width})
        torch.manual_seed(0)
        G = Generator(cfg.model).requires_grad_(False)
        conds = [torch.linalg.cond((m.weight * m.w_scale).double()).item() for m in G.M.net
                 if isinstance(m, EqualLinear)]
        f64, f32 = exact_inverse_error(G, torch.float64), exact_inverse_error(G, torch.float32)
        A = build_lighting(cfg)
        A.set_w_stats(G.M(torch.randn(8192, cfg.model.z_dim)))
        opt = torch.optim.Adam(A.parameters(), lr=cfg.invert.lighting_lr)
        tick = time.perf_counter()
        for step in range(args.steps):
            lighting_step(A, G, opt, cfg.invert.lighting_batch, step_generator(0, step, "lighting"))
        e = lighting_errors(A, G)
        print(f"{layers:>6}  {' '.join(f'{c:.0f}' for c in conds):<28} {f64:>11.3f} {f32:>11.3f}  "
              f"{e['target_error']:>8.3f} {e['midpoint_error']:>10.3f} {e['direction_cosine']:>8.3f}  "
              f"{time.perf_counter() - tick:>4.0f}", flush=True)


if __name__ == "__main__":
    main()
