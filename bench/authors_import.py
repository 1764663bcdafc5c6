"""Import time of a generator file of the authors' size, and CPU speed of the ADE20K masks.

    PYTHONPATH=. .venv/bin/python bench/authors_import.py [--repeat 3] [--threads 2]   # tests/ writes the file

Writes a checkpoint in their layout at their 256 px model's full size (both generators, nine
levels, random values: 210 MB) and times `import_authors` at 256 px, `--repeat` times (the
minimum and the spread). Then segments 256 x 256 photos with the ADE20K network (random
weights: speed does not depend on them), batch 1, and prints images/s and its FLOPs per image.
The machine's matmul rate is printed before and after, so a disturbed run shows.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from deeplandscape.authors.importer import import_authors
from deeplandscape.invert.ade20k import ADE20KSegmenter
from tests.authors.authors_files import PAPER_CHANNELS, their_checkpoint
from machine import Watch, summary  # bench/machine.py


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with Watch(), tempfile.TemporaryDirectory() as d:
        path = Path(d) / "475000.model"
        torch.save(their_checkpoint(PAPER_CHANNELS, code_dim=512, n_mlp=8, resolution=256), path)
        times = []
        for i in range(args.repeat):
            shutil.rmtree(Path(d) / "run", ignore_errors=True)
            start = time.perf_counter()
            import_authors(str(path), 256, str(Path(d) / "run"), log=lambda line: None)
            times.append(time.perf_counter() - start)
        print(f"import-authors, {path.stat().st_size / 1e6:.0f} MB file at 256 px: {summary(times)}")
        net = ADE20KSegmenter().eval()
        x = torch.randn(1, 3, 256, 256)
        with torch.no_grad():
            net(x)  # warm-up
            with FlopCounterMode(display=False) as counter:
                net(x)
            times = []
            for _ in range(args.repeat):
                start = time.perf_counter()
                net(x)
                times.append(time.perf_counter() - start)
        print(f"ADE20K masks, one 256 x 256 image: {1 / min(times):.2f} images/s ({summary(times)}), "
              f"{counter.get_total_flops() / 1e9:.1f} GFLOP per image")


if __name__ == "__main__":
    main()
