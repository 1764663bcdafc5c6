"""The paper's Fig. 6 ablation at tiny scale: full model vs "original StyleGAN".

    .venv/bin/python bench/fig6_tiny.py --out outputs/fig6-tiny [--stand-in-weights]

Trains two tiny models (configs/tiny.toml, 32 px) on the same synthetic landscapes under a
local Ray, one after the other, then runs the generation protocol (`evaluate generation`)
on each and prints a table next to the paper's 128 px figures:

- full: the tiny preset as it is (two noise sets, D_pair with the annealed probability, crop
  sampling);
- original StyleGAN: `model.separate_noise=false`, no D_pair (`p_pair_start = p_pair_end =
  0`), no crop sampling.

FID and LPIPS need the Inception and VGG16 files in the weight cache (`deeplandscape weights
status`). Without internet, `--stand-in-weights` writes networks with the right shapes and
random values to a temporary cache instead, and the table says so: such FID and LPIPS values
compare the two models with each other through a random network, nothing more. SSIM needs
no weights.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

VARIANTS = {
    "full model (+ crop sampling)": {},
    "original StyleGAN": {"model.separate_noise": "false", "train.p_pair_start": "0", "train.p_pair_end": "0",
                          "train.p_pair_mode": "constant", "train.crop_prob": "0"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="outputs/fig6-tiny")
    ap.add_argument("--images", type=int, default=512, help="synthetic training photos (and the FID reference)")
    ap.add_argument("--total-kimg", type=float, default=12.0, help="training length of each model")
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("--samples", type=int, default=600)
    ap.add_argument("--workers", type=int, default=2, help="Ray Data actors of the protocol")
    ap.add_argument("--stand-in-weights", action="store_true",
                    help="random Inception / VGG16 with the right shapes (offline); labelled in the table")
    args = ap.parse_args()

    import ray

    from deeplandscape.config import load_config
    from deeplandscape.data.synth import write_dataset
    from deeplandscape.evaluate.generation import PAPER_FIG6, GenerationSettings, evaluate_generation
    from deeplandscape.train.checkpoint import latest_checkpoint
    from deeplandscape.train.launch import train

    out = Path(args.out).resolve()
    data = out / "data"
    if not (data / "synth.json").exists():
        write_dataset(data, images=args.images, videos=32, frames=32, size=64, seed=0)
    if args.stand_in_weights:
        from deeplandscape.evaluate.stand_ins import write_stand_in_weights

        cache = Path(tempfile.mkdtemp(prefix="stand-in-weights-"))
        write_stand_in_weights(cache, ("inception", "vgg16"), seed=0)
        os.environ["DEEPLANDSCAPE_WEIGHTS"] = str(cache)
    ray.init(include_dashboard=False)
    rows = {}
    for name, overrides in VARIANTS.items():
        run_dir = out / ("full" if not overrides else "stylegan")
        cfg = load_config("tiny", {"data.images": str(data / "photos"), "data.videos": str(data / "videos"),
                                   "train.total_kimg": str(args.total_kimg), **overrides})
        t0 = time.perf_counter()
        done = latest_checkpoint(str(run_dir))
        if done is None or done.images_seen < args.total_kimg * 1000:
            train(cfg, str(run_dir), log=lambda line: None)
        t_train = time.perf_counter() - t0
        m = evaluate_generation(str(run_dir), str(data / "photos"), str(run_dir / "evaluation"),
                                GenerationSettings(pairs=args.pairs, samples=args.samples, workers=args.workers))
        rows[name] = {"fid": m["fid"], "lpips": m["lpips"], "ssim": m["ssim"], "train_s": t_train,
                      "kimg": m["model"]["kimg"], "report": m["outputs"]["report"]}
        print(f"{name}: FID {m['fid']:.2f}  LPIPS {m['lpips']:.4f}  SSIM {m['ssim']:.4f}  "
              f"(trained {t_train:.0f} s, {m['model']['kimg']:.1f} kimg)", flush=True)
    label = " (stand-in networks: not comparable to the paper)" if args.stand_in_weights else ""
    lines = [f"| model | FID{label} | LPIPS{label} | SSIM | paper FID | paper LPIPS | paper SSIM |",
             "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        p = PAPER_FIG6[name]
        lines.append(f"| {name} | {r['fid']:.2f} | {r['lpips']:.4f} | {r['ssim']:.4f} | {p['fid']} | {p['lpips']} "
                     f"| {p['ssim']} |")
    table = "\n".join(lines)
    print(table)
    (out / "fig6.json").write_text(json.dumps({"rows": rows, "stand_in_weights": args.stand_in_weights,
                                               "args": vars(args)}, indent=2))
    (out / "fig6.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
