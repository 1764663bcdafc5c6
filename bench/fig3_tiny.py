"""The paper's Fig. 3 at tiny scale: the seven inference configurations on held-out photos.

    .venv/bin/python bench/fig3_tiny.py --run-dir outputs/fig6-tiny/full/seed-0 --stand-in-weights

One trained tiny run (by default the first full-model run of `bench/fig6_tiny.py`); its
encoder is trained first when the run has none (`deeplandscape train-encoder`). Then the same
8 held-out synthetic photos (scenes not in any training set, with their ground-truth sky/water
masks) go through I2S, MO, E, EO, EOI, EOIF and EOIFS (paper 3.2), and for each:

- reconstruction: L1 (of [0, 255] levels), LPIPS-VGG (the real file, or a stand-in with
  `--stand-in-weights`) and PSNR of G's output against the photo;
- frame 0: L1 of the animation's first frame against the reconstruction (0: the video starts
  where the inversion ended);
- animation, 24 frames at speed 2.5 towards 3 o'clock: mean |frame_t - frame_0| on the
  ground-truth dynamic pixels and on the static ones, and their ratio.

The paper's qualitative table (Fig. 3) is the anchor: I2S and MO reconstruct but do not
animate, E animates but reconstructs poorly, EOIF and EOIFS do both.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import ray
import torch

from deeplandscape.animate.homography import CLOCK_DIRECTIONS
from deeplandscape.config import INVERSION_METHODS, Config
from deeplandscape.data.synth import is_mask_file, write_dataset
from deeplandscape.evaluate.image_metrics import lpips_model
from deeplandscape.evaluate.stand_ins import write_stand_in_weights
from deeplandscape.evaluate.video_checks import frame_change, median_change
from deeplandscape.invert.animate_photos import PhotoAnimator
from deeplandscape.invert.bucket import psnr_l1
from deeplandscape.invert.encoder import train_encoder
from deeplandscape.invert.inversion import run_generator
from deeplandscape.render import Animation, to_uint8
from deeplandscape.runs import encoder_dir
from deeplandscape.runs import load_model
from deeplandscape.train.checkpoint import latest_checkpoint

PAPER_FIG3 = {  # the paper's Fig. 3, as the issue reads it: reconstructs? animates? ("-": not stated)
    "I2S": ("yes", "no"), "MO": ("yes", "no"), "E": ("poorly", "yes"), "EO": ("-", "-"),
    "EOI": ("-", "-"), "EOIF": ("yes", "yes"), "EOIFS": ("yes", "yes"),
}
FRAMES, SPEED = 24, 2.5


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run-dir", default="outputs/fig6-tiny/full/seed-0")
    ap.add_argument("--out", default=None, help="default: RUN/fig3")
    ap.add_argument("--photos", type=int, default=8)
    ap.add_argument("--stand-in-weights", action="store_true", help="a random VGG16 with the right shapes (offline)")
    args = ap.parse_args()
    run_dir = str(Path(args.run_dir).resolve())
    out = Path(args.out or Path(run_dir) / "fig3").resolve()
    if args.stand_in_weights:
        cache = Path(tempfile.mkdtemp(prefix="stand-in-weights-"))
        write_stand_in_weights(cache, ("vgg16",), seed=0)
        os.environ["DEEPLANDSCAPE_WEIGHTS"] = str(cache)
    held_out = out / "photos"
    if not (held_out / "synth.json").exists():
        write_dataset(held_out, images=args.photos, videos=0, frames=2, size=64, seed=12345)
    ray.init(include_dashboard=False, log_to_driver=False)
    cfg: Config = load_model(run_dir).cfg
    if latest_checkpoint(encoder_dir(run_dir)) is None:
        t0 = time.perf_counter()
        train_encoder(cfg, run_dir, log=lambda line: None)
        print(f"encoder trained in {time.perf_counter() - t0:.0f} s", flush=True)
    lpips = lpips_model("vgg")
    uris = [str(p) for p in sorted((held_out / "photos").glob("*.png")) if not is_mask_file(p)]
    rows = {}
    for method in ("I2S", "MO", "E", "EO", "EOI", "EOIF", "EOIFS"):
        assert method in INVERSION_METHODS
        t0 = time.perf_counter()
        icfg = Config.from_dict(cfg.to_dict()).invert
        icfg.method = method
        animator = PhotoAnimator(run_dir, icfg, log=lambda line: None)
        photos = [animator.read(u) for u in uris]
        inv = animator.invert(photos)
        with torch.no_grad():
            recon = to_uint8(run_generator(animator.inverter.G, inv.ws, inv.S_st, inv.S_dyn, inv.resolution,
                                           inv.alpha, inv.params))
        target = np.stack([p.square for p in photos])
        psnr_l1s = [psnr_l1(r, t) for r, t in zip(recon, target)]
        changes, first = [], []
        for i, photo in enumerate(photos):
            animation = Animation(motion=CLOCK_DIRECTIONS["3h"], speed=SPEED, horizon=photo.horizon)
            video = np.concatenate(list(animator.render(inv.photo(i), animation, FRAMES)))
            first.append(float(np.abs(video[0].astype(np.float64) - recon[i]).mean()))
            changes.append(frame_change(video, photo.dynamic))
        change = median_change(changes)
        rows[method] = {
            "l1": float(np.mean([l1 for _, l1 in psnr_l1s]) * 127.5),
            "psnr": float(np.mean([p for p, _ in psnr_l1s])),
            "lpips": float(lpips(recon, target, np.ones(target.shape[:3], bool))),
            "frame0_vs_reconstruction": float(np.mean(first)),
            "motion": change.as_dict(), "seconds": time.perf_counter() - t0,
        }
        r = rows[method]
        print(f"{method}: L1 {r['l1']:.2f}  LPIPS {r['lpips']:.4f}  PSNR {r['psnr']:.2f}  frame 0 vs recon "
              f"{r['frame0_vs_reconstruction']:.2f}  sky {change.dynamic:.2f}  ground {change.static:.2f}  "
              f"ratio {change.ratio:.2f}  ({r['seconds']:.0f} s)", flush=True)
    label = " (stand-in)" if args.stand_in_weights else ""
    lines = [f"| method | L1 (levels) | LPIPS{label} | PSNR dB | frame 0 vs recon (levels) | sky change | ground change "
             f"| sky / ground | paper: reconstructs | paper: animates |", "|---|---|---|---|---|---|---|---|---|---|"]
    for method, r in rows.items():
        m = r["motion"]
        lines.append(f"| {method} | {r['l1']:.2f} | {r['lpips']:.4f} | {r['psnr']:.2f} | "
                     f"{r['frame0_vs_reconstruction']:.2f} | {m['dynamic']:.2f} | {m['static']:.2f} | {m['ratio']:.2f} "
                     f"| {PAPER_FIG3[method][0]} | {PAPER_FIG3[method][1]} |")
    table = "\n".join(lines)
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fig3.json").write_text(json.dumps({"rows": rows, "run_dir": run_dir, "args": vars(args)}, indent=2))
    (out / "fig3.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
