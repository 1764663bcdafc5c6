"""FLOPs of DeepLandscape at one resolution, counted with torch.utils.flop_counter's formulas, and what
they imply for GPUs and for the data pipeline.

    .venv/bin/python bench/flops.py --config paper256 --peak-tflops 790 --mfu 0.1 0.2 0.3

Counts (on the CPU, batch 1, alpha = 1) one forward of G per frame, of D_st and of D_pair, and
one whole training iteration of each kind (the real `Trainer.train_step`: D_st; D_pair on G's
pairs; D_pair on crop pairs), then the training FLOPs per kimg at the D_pair probability and
crop probability given. The formulas count 2 FLOPs per multiply-add of matrix products
and convolutions, backward and R1's double backward included; element-wise work is not
counted, so real GPU time is higher than FLOPs / peak.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from deeplandscape.config import load_config, parse_set
from deeplandscape.data.training import TrainingData
from deeplandscape.train.latents import generate, sample_latents
from deeplandscape.train.loop import Trainer, WorkerContext
from deeplandscape.train.schedule import phase_at

STEP_KINDS = {  # name: (p_pair, crop_prob) forcing that kind of iteration
    "D_st": (0.0, 0.0),
    "D_pair, G's pairs": (1.0, 0.0),
    "D_pair, crop pairs": (1.0, 1.0),
}


class FlopCount(TorchDispatchMode):
    """FlopCounterMode's per-op formulas without its module tracker, whose grad hooks trip
    over the training step (styles computed under no_grad, R1's double backward)."""

    def __init__(self):
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += formula(*args, **kwargs, out_val=out)
        return out


def count(fn) -> int:
    with FlopCount() as counter:
        fn()
    return counter.total


def random_data(load_resolution: int) -> TrainingData:
    """A few random photos and one short video: FLOPs do not depend on pixel values."""
    gen = torch.Generator().manual_seed(0)
    photos = torch.randint(0, 256, (4, 3, load_resolution, load_resolution), dtype=torch.uint8, generator=gen)
    video = torch.randint(0, 256, (4, 3, load_resolution, load_resolution), dtype=torch.uint8, generator=gen)
    return TrainingData(photos, [video])


def forward_flops(trainer: Trainer, resolution: int) -> dict[str, int]:
    lat = sample_latents(trainer.G, 1, 2, resolution, 0.0, torch.Generator().manual_seed(0))
    with torch.no_grad():
        frames = generate(trainer.G, lat, resolution, 1.0)  # [1, 2, 3, r, r]
        return {
            "G, one frame": count(lambda: generate(trainer.G, lat, resolution, 1.0)) // 2,
            "D_st, one image": count(lambda: trainer.D_st(frames[:, 0], resolution, 1.0)),
            "D_pair, one pair": count(lambda: trainer.D_pair(frames, resolution, 1.0)),
        }


def step_flops(preset: str, overrides: dict[str, str], data: TrainingData,
               device: torch.device | str = "cpu") -> dict[str, int]:
    """FLOPs per real image of one training iteration of each kind (batch 1), counted on `device`."""
    out = {}
    for name, (p_pair, crop) in STEP_KINDS.items():
        cfg = load_config(preset, {**overrides, "train.batch": '{"8": 1}', "train.p_pair_mode": "constant",
                                   "train.p_pair_start": str(p_pair), "train.crop_prob": str(crop)})
        trainer = Trainer(cfg, data, WorkerContext(device=torch.device(device)))
        t, res = cfg.train, cfg.model.resolution
        # The stable part of the last phase: full resolution, alpha = 1.
        trainer.images_seen = int((res.bit_length() - t.start_resolution.bit_length()) * t.phase_kimg * 1000
                                  + t.fade_kimg * 1000)
        phase = phase_at(trainer.images_seen, t, res)
        assert phase.resolution == res and phase.alpha == 1.0, phase
        out[name] = count(trainer.train_step)
    return out


def per_kimg(steps: dict[str, int], p_pair: float, crop_prob: float) -> float:
    mix = {"D_st": 1 - p_pair, "D_pair, G's pairs": p_pair * (1 - crop_prob), "D_pair, crop pairs": p_pair * crop_prob}
    return 1000 * sum(steps[k] * w for k, w in mix.items())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="paper256")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--p-pair", type=float, default=0.1, help="D_pair probability (0.1 after each phase's anneal)")
    ap.add_argument("--crop-prob", type=float, default=0.5)
    ap.add_argument("--peak-tflops", type=float, default=790.0, help="one GPU's dense bf16 peak (H100: ~790 measured)")
    ap.add_argument("--mfu", type=float, nargs="+", default=[0.1, 0.2, 0.3], help="model FLOP utilisation")
    ap.add_argument("--gpus", type=int, default=8)
    ap.add_argument("--scaling", type=float, default=0.8, help="data-parallel efficiency of --gpus GPUs")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    overrides = parse_set(args.overrides)
    cfg = load_config(args.config, overrides)
    res = cfg.model.resolution
    data = random_data(cfg.data.load_resolution or 2 * res)
    start = time.perf_counter()
    trainer = Trainer(cfg, data)
    print(f"{args.config}: {res} px, G {sum(p.numel() for p in trainer.G.parameters()) / 1e6:.1f} M parameters, "
          f"D_st {sum(p.numel() for p in trainer.D_st.parameters()) / 1e6:.1f} M, "
          f"D_pair {sum(p.numel() for p in trainer.D_pair.parameters()) / 1e6:.1f} M")
    for name, flops in forward_flops(trainer, res).items():
        print(f"  forward {name:24s} {flops / 1e9:8.1f} GFLOP")
    steps = step_flops(args.config, overrides, data)
    for name, flops in steps.items():
        print(f"  iteration {name:22s} {flops / 1e9:8.1f} GFLOP per real image")
    kimg = per_kimg(steps, args.p_pair, args.crop_prob)
    print(f"  training at p_pair {args.p_pair:g}, crop {args.crop_prob:g}: {kimg / 1e15:.2f} PFLOP per kimg")
    frames = args.p_pair * (2 + args.crop_prob)  # a real pair, plus one frame to crop from
    print(f"  real inputs per image seen: {1 - args.p_pair:.2f} photos + {frames:.2f} video frames")
    for mfu in args.mfu:
        one = args.peak_tflops * 1e12 * mfu / kimg
        many = one * args.gpus * args.scaling
        print(f"  MFU {mfu:.0%}: 1 GPU {one:.3f} kimg/s ({one * 1000:.0f} img/s, {cfg.train.total_kimg / one / 3600:.0f} h "
              f"for {cfg.train.total_kimg:g} kimg); {args.gpus} GPUs at {args.scaling:.0%} scaling {many:.2f} kimg/s "
              f"({many * 1000:.0f} img/s: {many * 1000 * (1 - args.p_pair):.0f} photos/s + "
              f"{many * 1000 * frames:.0f} frames/s to decode)")
    print(f"  (counted in {time.perf_counter() - start:.0f} s on the CPU)")


if __name__ == "__main__":
    main()
