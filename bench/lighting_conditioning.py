"""How close the lighting network A gets to M, and why it cannot on a deep random M.

    .venv/bin/python bench/lighting_conditioning.py [--layers 1 2 4] [--steps 3000] [--width 256]
        [--run-dir RUN --photo PHOTO]

For each mapping depth, builds a fresh tiny M (configs/tiny.toml, seed 0) and prints:
- the condition number of each of its linear layers;
- the error of inverting M layer by layer and applying it again with z_dyn_b: exactly in
  float64 and in float32, and truncated (singular values under 1e-3 of each layer's largest
  dropped) in float32;
- the errors of A (the tiny preset's A, `--width` wide) after `--steps` steps.

With `--run-dir` and `--photo`, it also inverts the photo with the run (as `animate` does) and
puts the photo's styles through the same truncated inverse of the run's M: how far from M's
image the styles A has to work on lie.

Errors are relative to the displacement |w_b - w_a| (`lighting_errors`): 0 is exact, 1 is as
far as not moving at all. Single-threaded and CPU-only, so it runs the same on any machine.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

from deeplandscape.config import load_config
from deeplandscape.invert.lighting import LightingNet, build_lighting, lighting_errors, lighting_step
from deeplandscape.nets.generator import Generator
from deeplandscape.nets.layers import EqualLinear
from deeplandscape.train.latents import step_generator


def invert_m(M: torch.nn.Module, w: torch.Tensor, rtol: float = 0.0) -> torch.Tensor:
    """M's pixel-normed input for outputs `w`, inverting layer by layer in w's dtype: exactly, or
    with each layer's singular values below `rtol` x the largest dropped (a truncated
    pseudo-inverse)."""
    x = w
    for lin in reversed([m for m in M.net if isinstance(m, EqualLinear)]):
        x = LightingNet.pre_activation(x)
        W, b = (lin.weight * lin.w_scale).to(w.dtype), (lin.bias * lin.lr_mul).to(w.dtype)
        x = (x - b) @ torch.linalg.pinv(W, rtol=rtol).T if rtol else torch.linalg.solve(W, (x - b).T).T
    return x


def inverse_error(G: Generator, dtype: torch.dtype, rtol: float = 0.0, samples: int = 4096) -> float:
    """|M(z_st recovered from w_a, z_b) - w_b| / |w_b - w_a| with M inverted (`invert_m`) in
    `dtype`. The recovered pixel-normed z stands in for z (PixelNorm drops its norm)."""
    gen = torch.Generator().manual_seed(1)
    M = copy.deepcopy(G.M).double()
    z_st = torch.randn(samples, G.z_st_dim, generator=gen, dtype=torch.float64)
    z_a, z_b = torch.randn(2, samples, G.cfg.z_dyn_dim, generator=gen, dtype=torch.float64)
    w_a, w_b = M(torch.cat([z_st, z_a], 1)), M(torch.cat([z_st, z_b], 1))
    x = invert_m(M, w_a.to(dtype), rtol)
    pred = M(torch.cat([x.double()[:, :G.z_st_dim], z_b], 1))
    return float((pred - w_b).norm(dim=1).mean() / (w_b - w_a).norm(dim=1).mean())


def photo_styles_off_image(run_dir: str, photo: str) -> None:
    from deeplandscape.invert.animate_photos import PhotoAnimator

    animator = PhotoAnimator(run_dir, log=lambda *_: None)
    M = animator.model.G.M
    ws = animator.invert([animator.read(photo)]).ws[0].detach()  # [levels, w]
    with torch.no_grad():
        samples = M(torch.randn(len(ws), animator.model.G.cfg.z_dim))
        for name, w in (("M's own samples", samples), (f"styles of {photo}", ws)):
            z = invert_m(M, w, rtol=1e-3)
            refit = float((M(z) - w).norm(dim=1).mean() / w.norm(dim=1).mean())
            norms = ", ".join(f"{v:.3g}" for v in z.norm(dim=1).tolist())
            print(f"{name}: |z| from the truncated inverse {norms} (PixelNorm's sphere: "
                  f"{z.shape[1] ** 0.5:.3g}); |M(z) - w| / |w| = {refit:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--run-dir", help="a trained run, to check a photo's inverted styles too")
    parser.add_argument("--photo", help="the photo to invert with --run-dir")
    args = parser.parse_args()
    if bool(args.run_dir) != bool(args.photo):
        parser.error("--run-dir and --photo go together")
    torch.set_num_threads(1)
    print(f"{'layers':>6}  {'layer condition numbers':<28} {'inverse f64':>11} {'inverse f32':>11} {'truncated':>9}  "
          f"{'A target':>8} {'A midpoint':>10} {'A cosine':>8}  {'s':>4}")
    for layers in args.layers:
        cfg = load_config("tiny", {"model.mapping_layers": layers, "invert.lighting_width": args.width})
        torch.manual_seed(0)
        G = Generator(cfg.model).requires_grad_(False)
        conds = [torch.linalg.cond((m.weight * m.w_scale).double()).item() for m in G.M.net
                 if isinstance(m, EqualLinear)]
        f64, f32 = inverse_error(G, torch.float64), inverse_error(G, torch.float32)
        truncated = inverse_error(G, torch.float32, rtol=1e-3)
        A = build_lighting(cfg)
        A.set_w_stats(G.M(torch.randn(8192, cfg.model.z_dim)))
        opt = torch.optim.Adam(A.parameters(), lr=cfg.invert.lighting_lr)
        tick = time.perf_counter()
        for step in range(args.steps):
            lighting_step(A, G, opt, cfg.invert.lighting_batch, step_generator(0, step, "lighting"))
        e = lighting_errors(A, G)
        print(f"{layers:>6}  {' '.join(f'{c:.0f}' for c in conds):<28} {f64:>11.3f} {f32:>11.3f} {truncated:>9.3f}  "
              f"{e['target_error']:>8.3f} {e['midpoint_error']:>10.3f} {e['direction_cosine']:>8.3f}  "
              f"{time.perf_counter() - tick:>4.0f}", flush=True)
    if args.run_dir:
        photo_styles_off_image(args.run_dir, args.photo)


if __name__ == "__main__":
    main()
