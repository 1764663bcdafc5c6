"""Does a trained run draw a frame around its samples? (issue 17, item 5)

    .venv/bin/python bench/ring_check.py --photos DATA/photos RUN [RUN ...]

For each run: 64 samples (seed 1) of its EMA generator at the resolution it has reached, and
64 of the photos box-resized to that size; the border ring contrast (outer ring against the
ring 2 px inside), the interior ring contrast (4 px against 6 px inside) and their ratio
(`evaluate/video_checks.py`). A frame shows as a border ratio above the photos'; the check
passes when the samples' ratio is at most 1.5x the photos'.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from deeplandscape.data.synth import is_mask_file
from deeplandscape.evaluate.video_checks import ring_contrast
from deeplandscape.render import to_uint8
from deeplandscape.runs import load_model

LIMIT = 1.5


def samples(run: str, n: int = 64) -> np.ndarray:
    model = load_model(run)
    G, r = model.G, model.resolution
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(n, G.cfg.z_dim, generator=gen)
    S_st, S_dyn = G.make_noise(n, r, gen), G.make_noise(n, r, gen)
    with torch.no_grad():
        return to_uint8(G(G.ws_from_z(z), S_st, S_dyn if G.cfg.separate_noise else None, r, model.alpha))


def photos(folder: str, size: int, n: int = 64) -> np.ndarray:
    paths = sorted(p for p in Path(folder).glob("*.png") if not is_mask_file(p))[:n]
    return np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BOX)) for p in paths])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", required=True, help="folder of the training photos (PNG)")
    ap.add_argument("runs", nargs="+")
    args = ap.parse_args()
    print("| run | border | interior | border / interior | photos: border, interior, ratio | check |")
    print("|---|---|---|---|---|---|")
    for run in args.runs:
        s = samples(run)
        fake, real = ring_contrast(s), ring_contrast(photos(args.photos, s.shape[1]))
        ok = fake.border_ratio <= LIMIT * real.border_ratio
        print(f"| {run} | {fake.edge:.1f} | {fake.interior:.1f} | {fake.border_ratio:.2f} | {real.edge:.1f}, "
              f"{real.interior:.1f}, {real.border_ratio:.2f} | {'ok' if ok else 'FRAME'} |", flush=True)


if __name__ == "__main__":
    main()
