"""Our FID (Ray Data actor pool) against ``python -m pytorch_fid`` on the same two folders.

    .venv/bin/python bench/fid_vs_pytorch_fid.py --images 1000 --size 64 --workers 2

Writes two folders of procedural landscape photos (different seeds, no mask files, so both
tools read the same images), then in one run: pytorch-fid's CLI (a subprocess, all cores),
our `evaluate fid` pipeline on a local Ray (cold: no cached statistics) and once more
(warm: both sets' statistics from the cache), `--repeat` rounds of the three interleaved (the
statistics cache emptied before each cold run). Prints the best time with its spread and the
value side by side, pytorch-fid's own distance function applied to our statistics (which part
differs, if any), and the machine's matmul rate before and after.

Weights: the real ``pt_inception-2015-12-05-6726825d.pth`` when it is in the torch hub cache;
otherwise a stand-in with the right keys and shapes and random values is written to a
temporary cache that both tools read. The values are then not comparable to published FIDs,
but the two implementations must agree.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from machine import Watch, spread  # bench/machine.py


def write_photos(folder: Path, count: int, size: int, seed: int) -> None:
    from deeplandscape.data.synth import render_frame, sample_scene

    folder.mkdir(parents=True)
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        image, _ = render_frame(sample_scene(rng), float(rng.uniform(0, 1000)), size)
        Image.fromarray(image).save(folder / f"{i:05d}.png")


def weights_home(tmp: Path) -> tuple[Path, bool]:
    """A TORCH_HOME holding the Inception file: the user's if present, else one with a stand-in."""
    import torch

    from deeplandscape.evaluate import weights
    from deeplandscape.evaluate.stand_ins import write_stand_in_weights

    name = weights.REGISTRY["inception"].filename
    home = Path(os.environ.get("TORCH_HOME") or Path(torch.hub.get_dir()).parent)
    if (home / "hub" / "checkpoints" / name).is_file():
        return home, True
    home = tmp / "torch-home"
    write_stand_in_weights(home / "hub" / "checkpoints", ("inception",), seed=0)
    return home, False


def run_pytorch_fid(a: Path, b: Path, env: dict, batch_size: int) -> tuple[float, float]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "pytorch_fid", str(a), str(b), "--device", "cpu",
                          "--batch-size", str(batch_size), "--num-workers", "1"],
                         env=env, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    return float(re.search(r"FID:\s+(\S+)", out.stdout).group(1)), seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=1000, help="images per folder")
    ap.add_argument("--size", type=int, default=64, help="image side in pixels")
    ap.add_argument("--workers", type=int, default=2, help="Ray Data actors (one CPU each)")
    ap.add_argument("--batch-size", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=3, help="rounds of the three timed runs, interleaved")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        home, real = weights_home(tmp)
        os.environ.update(TORCH_HOME=str(home), DEEPLANDSCAPE_STATS_CACHE=str(tmp / "stats"),
                          RAY_AUTH_MODE=os.environ.get("RAY_AUTH_MODE", "disabled"))
        os.environ.pop("DEEPLANDSCAPE_WEIGHTS", None)
        start = time.perf_counter()
        write_photos(tmp / "a", args.images, args.size, seed=0)
        write_photos(tmp / "b", args.images, args.size, seed=1)
        print(f"{2 * args.images} images of {args.size} px written in {time.perf_counter() - start:.0f} s; "
              f"Inception weights: {'the real file' if real else 'STAND-IN (random values, right shapes)'}; "
              f"{os.cpu_count()} CPUs")

        import ray

        from deeplandscape.evaluate.pipeline import fid

        start = time.perf_counter()
        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        t_ray = time.perf_counter() - start
        kw = dict(workers=args.workers, batch_size=args.batch_size)
        times: dict[str, list[float]] = {"theirs": [], "cold": [], "warm": []}
        with Watch():
            for _ in range(args.repeat):
                theirs, t = run_pytorch_fid(tmp / "a", tmp / "b", dict(os.environ), args.batch_size)
                times["theirs"].append(t)
                shutil.rmtree(tmp / "stats", ignore_errors=True)
                start = time.perf_counter()
                cold = fid(str(tmp / "a"), str(tmp / "b"), **kw)
                times["cold"].append(time.perf_counter() - start)
                start = time.perf_counter()
                warm = fid(str(tmp / "a"), str(tmp / "b"), **kw)
                times["warm"].append(time.perf_counter() - start)
        t_theirs, t_cold, t_warm = (f"{min(t):5.1f} ({spread(t):3.0%})" for t in times.values())
        ray.shutdown()
        # pytorch-fid's own Frechet distance (scipy sqrtm) on our statistics: separates a
        # difference in the features from one in the distance of singular covariances.
        from pytorch_fid.fid_score import calculate_frechet_distance

        sa, sb = cold.stats
        start = time.perf_counter()
        theirs_on_ours = float(calculate_frechet_distance(sa.mean(), sa.cov(), sb.mean(), sb.cov()))
        t_sqrtm = time.perf_counter() - start

    print(f"{'':36s} {'s (spread)':>12s} {'FID':>14s}")
    print(f"{'python -m pytorch_fid A B':36s} {t_theirs:>12s} {theirs:14.6f}")
    print(f"{f'ours, Ray Data, {args.workers} actors, cold':36s} {t_cold:>12s} {cold.value:14.6f}")
    print(f"{'ours, statistics cached (warm)':36s} {t_warm:>12s} {warm.value:14.6f}")
    print(f"{'pytorch-fid distance, our statistics':36s} {t_sqrtm:12.1f} {theirs_on_ours:14.6f}")
    print(f"relative difference {abs(cold.value - theirs) / abs(theirs):.2e} (values), "
          f"{abs(theirs_on_ours - theirs) / abs(theirs):.2e} (same distance code); ray.init took {t_ray:.1f} s "
          f"(not counted); cached sets: {warm.a['cache']}, {warm.b['cache']}")
    if not real:
        print("values come from stand-in weights: not comparable to published FIDs")


if __name__ == "__main__":
    main()
