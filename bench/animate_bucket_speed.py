"""The bucket job's Ray Data pipeline against a plain serial loop, on the same photos, in one run.

    .venv/bin/python bench/animate_bucket_speed.py --photos 48 --batch 4 --steps 20 --frames 16 --workers 1

Serial: one process, `PhotoAnimator` read -> invert (a batch of `--batch`) -> write, one batch
after the other, torch on `--cpus-per-worker` threads. Pipeline: `animate_bucket` on a local
Ray (started before the clock starts, as a cluster would be) with `--workers` animating actors
of `--cpus-per-worker` CPUs each and decode tasks beside them. Both write every output (mp4s,
posters, compare.png, inversion.json) to local folders; both times include loading the models,
the pipeline's also starting its actors. Without `--run-dir` the photos go through a run with
random weights built from `--config` (speed does not depend on the weights). `--repeat` rounds
of serial then pipeline, interleaved (Ray stays up through them, idle during the serial loop);
the best round of each is printed with the spread, and the machine's matmul rate before and after.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from deeplandscape import storage
from deeplandscape.config import Config, load_config, parse_set
from deeplandscape.data.synth import write_dataset
from deeplandscape.invert.bucket import BucketJob, animate_bucket, assign_keys, list_inputs
from deeplandscape.invert.encoder import build_encoder, mean_w
from deeplandscape.nets.generator import Generator
from deeplandscape.render import VideoOutputs
from deeplandscape.runs import encoder_dir, model_settings
from deeplandscape.storage import Retry
from deeplandscape.train.checkpoint import save_checkpoint
from machine import Watch, spread  # bench/machine.py


def random_run(cfg: Config, run_dir: str) -> str:
    """A run directory with random G and E at the config's final resolution."""
    G = Generator(cfg.model).eval()
    E = build_encoder(cfg, pretrained=False)
    E.w_avg.copy_(mean_w(G))
    images = int(cfg.train.total_kimg * 1000) + 1  # past every phase: full resolution, alpha 1
    save_checkpoint(run_dir, cfg, 1, images, {"G_ema": G.state_dict()})
    save_checkpoint(encoder_dir(run_dir), cfg, 1, images, {"E": E.state_dict()})
    return run_dir


def serial(photos: str, run_dir: str, out: str, icfg, homographies: int, frames: int) -> dict:
    """The plain loop: stage times summed over photos, and the total."""
    from deeplandscape.invert.animate_photos import PhotoAnimator, pick_directions
    from deeplandscape.invert.photos import PhotoError

    start = time.perf_counter()
    animator = PhotoAnimator(run_dir, icfg, log=lambda _msg: None)
    times = {"load_s": time.perf_counter() - start, "read_s": 0.0, "invert_s": 0.0, "render_s": 0.0}
    keyed, _ = assign_keys(photos, list_inputs(photos, out, None, Retry()))
    done = 0
    for i in range(0, len(keyed), icfg.batch):
        t = time.perf_counter()
        batch = []
        for uri, key in keyed[i : i + icfg.batch]:
            try:
                batch.append(animator.read(uri, key, data=storage.read_bytes(uri)))
            except PhotoError:
                pass
        times["read_s"] += time.perf_counter() - t
        t = time.perf_counter()
        inv = animator.invert(batch)
        times["invert_s"] += time.perf_counter() - t
        t = time.perf_counter()
        for k, photo in enumerate(batch):
            animator.write(photo, inv.photo(k), storage.join(out, photo.name),
                           pick_directions(photo.name, homographies), frames, 2.5, VideoOutputs())
            done += 1
        times["render_s"] += time.perf_counter() - t
        times.setdefault("first_batch_s", time.perf_counter() - start)
    times["total_s"] = time.perf_counter() - start
    return {"ok": done, **times}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="tiny", help="config of the random-weight run (without --run-dir)")
    ap.add_argument("--run-dir", help="a trained run with RUN/encoder instead")
    ap.add_argument("--set", dest="overrides", action="append", default=[])
    ap.add_argument("--photos", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4, help="invert.batch")
    ap.add_argument("--steps", type=int, default=20, help="O steps and F steps per photo")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--homographies", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1, help="animating actors in the pipeline")
    ap.add_argument("--cpus-per-worker", type=int, default=1, help="CPUs per actor; torch threads of the serial loop")
    ap.add_argument("--ray-cpus", type=int, help="CPUs of the local Ray (default: all)")
    ap.add_argument("--repeat", type=int, default=3, help="rounds of serial and pipeline, interleaved")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bucket-bench-") as folder:
        run(args, Path(folder))


def run(args: argparse.Namespace, tmp: Path) -> None:
    import ray

    cfg = load_config(args.config, parse_set(args.overrides))
    run_dir = args.run_dir or random_run(cfg, str(tmp / "run"))
    run_cfg, resolution = model_settings(run_dir)
    icfg = dataclasses.replace(run_cfg.invert, batch=args.batch, opt_steps=args.steps, finetune_steps=args.steps,
                               opt_patience=10**9, opt_perceptual=0.0, finetune_perceptual=0.0)
    write_dataset(tmp / "data", images=args.photos, videos=0, frames=2, size=2 * resolution, seed=3)
    photos = str(tmp / "data" / "photos")

    torch.set_num_threads(args.cpus_per_worker)
    ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)  # a cluster is up already
    serial_runs, pipeline_runs = [], []
    with Watch():
        for i in range(args.repeat):
            serial_runs.append(serial(photos, run_dir, str(tmp / f"serial-{i}"), icfg, args.homographies, args.frames))
            job = BucketJob(photos, str(tmp / f"pipeline-{i}"), run_dir, homographies=args.homographies,
                            frames=args.frames, workers=args.workers, cpus_per_worker=args.cpus_per_worker)
            started, start = datetime.now(timezone.utc), time.perf_counter()
            s = animate_bucket(job, icfg, log=lambda _msg: None)
            total = time.perf_counter() - start
            finished = sorted(datetime.fromisoformat(json.loads(p.read_text())["finished_at"])
                              for p in (tmp / f"pipeline-{i}").rglob("done.json"))
            first = (finished[args.batch - 1] - started).total_seconds()  # actors and the first batch
            pipeline_runs.append({"summary": s, "total_s": total, "first_batch_s": first})
    ray.shutdown()
    plain = min(serial_runs, key=lambda r: r["total_s"])
    best = min(pipeline_runs, key=lambda r: r["total_s"])
    s, pipeline_total, first_batch = best["summary"], best["total_s"], best["first_batch_s"]
    print(f"{args.repeat} interleaved rounds, the best of each: serial spread "
          f"{spread([r['total_s'] for r in serial_runs]):.0%}, pipeline spread "
          f"{spread([r['total_s'] for r in pipeline_runs]):.0%}")

    n = args.photos
    def steady(total: float, first: float) -> float:  # photos/h after the first batch
        return (n - args.batch) / (total - first) * 3600 if n > args.batch else float("nan")

    print(f"{resolution} px, {n} photos (EOIFS: masks next to them), batch {args.batch}, {args.steps} O + "
          f"{args.steps} F steps, {args.homographies} x {args.frames}-frame videos each")
    print(f"serial loop   : {plain['ok']} ok in {plain['total_s']:.1f} s = {plain['ok'] / plain['total_s'] * 3600:.0f} "
          f"photos/h on {args.cpus_per_worker} torch thread(s); models {plain['load_s']:.1f} s, per photo: read+decode "
          f"{plain['read_s'] / n:.3f} s, invert {plain['invert_s'] / n:.3f} s, render+encode+write "
          f"{plain['render_s'] / n:.3f} s")
    stages = s["mean_stage_s"]
    print(f"Ray Data      : {s['ok']} ok in {pipeline_total:.1f} s = {s['ok'] / pipeline_total * 3600:.0f} photos/h on "
          f"{args.workers} actor(s) x {args.cpus_per_worker} CPU; per photo: read {stages['read_s']:.3f} s, decode "
          f"{stages['decode_s']:.3f} s, invert {stages['invert_s']:.3f} s, render+encode {stages['render_s']:.3f} s, "
          f"upload {stages['upload_s']:.3f} s")
    print(f"first batch done after: serial {plain['first_batch_s']:.1f} s, pipeline {first_batch:.1f} s (Ray Data and "
          f"actor start, model load); after it: serial {steady(plain['total_s'], plain['first_batch_s']):.0f} photos/h, "
          f"pipeline {steady(pipeline_total, first_batch):.0f} photos/h")
    print(f"throughput ratio (pipeline / serial): {plain['total_s'] / pipeline_total:.2f}x overall, "
          f"{steady(pipeline_total, first_batch) / steady(plain['total_s'], plain['first_batch_s']):.2f}x after the "
          "first batch")


if __name__ == "__main__":
    main()
