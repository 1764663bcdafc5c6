"""The GPU check: every CUDA path of the project in one command that stays under 8 minutes,
printing the figures our performance goals are stated in.

    make gpu-check                                             # = .venv/bin/python bench/gpu_check.py
    .venv/bin/python bench/gpu_check.py --device cpu --tiny    # every step, tiny sizes, on a CPU (CI runs it)

Steps, each in a child process of its own under a time budget (a step that fails, runs out of
time or kills its process is recorded with its reason, and the run goes on):
  1 device     the device, torch and CUDA versions, measured bf16 and float32 matmul FLOP/s
               (the peak that MFU divides by: bf16 on CUDA, float32 on a CPU)
  2 train      paper256 at 256 px (start resolution forced to 256, alpha 1), bf16 autocast, random
               photos and frames in memory, one process: s/kimg, images/s and MFU from the FLOPs
               that bench/flops.py counts; then with train.channels_last and with train.compile
               (each a config switch with a plain fallback): which is fastest. Also one NCCL
               all-reduce of G's gradient size (gloo on a CPU).
  3 inversion  EOIF at 256 px with the paper-size G and E (random weights; L1 only, no LPIPS),
               fixed step counts, B = 1, 8, 32: photos/s, the ratio to B = 1, MFU, peak GPU memory
               per photo; and the time at the config's 500 + 500 steps
  4 render     one photo, 5 homographies x 100 frames: frames/s of G (+ warp) and of the H.264
               encoder, and which of them bounds the bucket job on this device
  5 superres   x4 SR (64 x 23 RRDB, bf16 on CUDA) + guided-filter blend, 256 -> 1024 px: frames/s
  6 features   Inception (FID) and I3D (FVD) on the device: images/s and clips/s. Inception runs
               with random weights of its real shapes (speed does not depend on them); I3D only
               when its TorchScript file is in the weight cache (deeplandscape weights fetch i3d)
  7 bucket     `animate_bucket` with one GPU actor on 32 synthetic photos through Ray Data (local
               folders): photos/hour and the per-stage times
Writes OUT/gpu-check.json and OUT/gpu-check.md (OUT: --out, default gpu-check/), each step's
output in OUT/logs/. The goals it checks (docs/BENCHMARKS.md, "The GPU check"): training >= 30%
bf16 MFU at 256 px; EOIF inversion (500 + 500 steps) + 5 x 100 frames <= 0.7 s per photo on one
H100; B = 32 >= 8x the photos/s of B = 1. `--tiny` uses the tiny preset and small counts, so the
figures of a CPU run only show that every path runs, not how fast the model is.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("RAY_AUTH_MODE", "disabled")

import torch  # noqa: E402  (after the environment a Ray in a child step reads)

from machine import free_port, matmul_rate, sync  # noqa: E402  bench/machine.py

GOALS = {
    "train_mfu": 0.30,  # bf16 MFU of training at 256 px, one H100
    "photo_s": 0.7,  # EOIF (500 + 500 steps) + 5 x 100 frames, seconds per photo, one H100
    "batch_ratio": 8.0,  # photos/s at B = 32 over B = 1
}


@dataclasses.dataclass
class Sizes:
    """What each step runs: the paper's sizes, or the tiny ones of `--tiny`."""

    preset: str = "paper256"
    train_steps: int = 10
    inversion_batches: tuple[int, ...] = (1, 8, 32)
    inversion_steps: int = 10  # O steps and F steps per photo
    homographies: int = 5
    frames: int = 100
    render_batch: int = 25
    sr_preset: str = "paper256"
    sr_frames: int = 4
    inception_images: int = 128
    i3d_clips: int = 8
    bucket_photos: int = 32
    bucket_steps: int = 10
    bucket_frames: int = 100
    bucket_homographies: int = 5


TINY = Sizes(preset="tiny", train_steps=3, inversion_batches=(1, 8, 32), inversion_steps=2, homographies=5,
             frames=20, render_batch=10, sr_preset="tiny", sr_frames=2, inception_images=8, i3d_clips=2,
             bucket_photos=4, bucket_steps=2, bucket_frames=4, bucket_homographies=1)

# Seconds each step may take (the child process is killed after it). Steps measure in loops that
# stop early at 80% of it. Sum: 445 s, so with the children's start-up the run stays under 8 minutes.
BUDGETS = {"device": 20, "train": 150, "inversion": 70, "render": 40, "superres": 40, "features": 35, "bucket": 90}
STEPS = list(BUDGETS)
# `--tiny` runs (CI's 2-core machines, maybe loaded) get twice the time: the 8 minutes are a GPU's.
TINY_BUDGET_SCALE = 2


def budget(step: str, tiny: bool) -> float:
    return BUDGETS[step] * (TINY_BUDGET_SCALE if tiny else 1)


class Step:
    """What a step function gets: the device, the sizes, its soft deadline and the results of
    the steps before it (the measured peak, for MFU)."""

    def __init__(self, device: torch.device, sizes: Sizes, budget: float, earlier: dict, tmp: Path, result: Path):
        self.device, self.sizes, self.earlier, self.tmp, self.result = device, sizes, earlier, tmp, result
        self.deadline = time.perf_counter() + 0.8 * budget
        self.cuda = device.type == "cuda"

    def time_left(self) -> bool:
        return time.perf_counter() < self.deadline

    def peak(self) -> float | None:
        """FLOP/s that MFU divides by: the measured bf16 matmul rate on CUDA, float32 on a CPU."""
        d = self.earlier.get("device", {}).get("figures", {})
        return d.get("peak_flops")

    def skip(self, why: str) -> dict:
        return {"skipped": why}

    def save(self, figures: dict) -> None:
        """The figures so far, kept if the step is stopped at its budget before it ends."""
        self.result.write_text(json.dumps({"status": "partial", "figures": figures}, default=str))


# --- the steps ------------------------------------------------------------------------------------
# Each step imports what it runs inside its function: a step has a process of its own, which so
# loads only its own modules (Ray, for one, only in the bucket step).
def step_device(s: Step) -> dict:
    out = {"torch": torch.__version__, "python": platform.python_version(), "device": str(s.device),
           "cpu_threads": torch.get_num_threads()}
    if s.cuda:
        props = torch.cuda.get_device_properties(s.device)
        out.update(name=props.name, cuda=torch.version.cuda, memory_gib=round(props.total_memory / 2**30, 1),
                   cudnn=torch.backends.cudnn.version())
        n = 8192
    else:
        out.update(name=platform.processor() or platform.machine(), cuda=None)
        n = 1024
    out["float32_matmul_tflops"] = matmul_rate(s.device, n=n) / 1e12
    out["bf16_matmul_tflops"] = matmul_rate(s.device, n=n, dtype=torch.bfloat16) / 1e12
    out["peak_flops"] = (out["bf16_matmul_tflops"] if s.cuda else out["float32_matmul_tflops"]) * 1e12
    out["peak_is"] = "measured bf16 matmul" if s.cuda else "measured float32 matmul (a CPU trains in float32)"
    return out


def step_train(s: Step) -> dict:
    from flops import per_kimg, random_data, step_flops  # bench/flops.py

    from deeplandscape.config import load_config
    from deeplandscape.nets.generator import Generator
    from deeplandscape.train.loop import Trainer, WorkerContext
    from deeplandscape.train.schedule import global_batch, phase_at

    base = {"train.amp": "bf16" if s.cuda else "none"}
    cfg = load_config(s.sizes.preset, base)
    res = cfg.model.resolution
    forced = {**base, "train.start_resolution": str(res)}
    data = random_data(cfg.data.load_resolution or 2 * res)
    flops = step_flops(s.sizes.preset, forced, data, s.device)
    t = cfg.train
    flops_per_image = per_kimg(flops, t.p_pair_end, t.crop_prob) / 1000  # p_pair after each phase's anneal
    out = {"preset": s.sizes.preset, "resolution": res, "batch": global_batch(t, res), "amp": base["train.amp"],
           "flops_per_image": flops_per_image, "arms": {}}
    if not s.cuda:
        out["notes"] = ["bf16 autocast runs on CUDA only: this CPU run trains in float32"]
    arms = {"plain": {}, "channels_last": {"train.channels_last": "true"}, "compile": {"train.compile": "true"}}
    if not s.cuda:  # 78 s to compile the tiny preset on the 2-core CI machine: more than its budget
        arms.pop("compile")
        out["arms"]["compile"] = s.skip("torch.compile takes minutes on a CPU (78 s for the tiny preset on 2 cores); "
                                        "measured on CUDA")
    for name, overrides in arms.items():
        if not s.time_left():
            out["arms"][name] = s.skip("out of this step's time budget")
            continue
        logged: list[str] = []
        arm_cfg = load_config(s.sizes.preset, {**forced, **overrides})
        trainer = Trainer(arm_cfg, data, WorkerContext(device=s.device, log=logged.append))
        trainer.images_seen = int(t.fade_kimg * 1000)  # past the fade-in: alpha 1
        assert phase_at(trainer.images_seen, arm_cfg.train, res).alpha == 1.0
        start = time.perf_counter()
        trainer.train_step()  # warm-up (and the compile)
        sync(s.device)
        warm = time.perf_counter() - start
        if s.cuda:
            torch.cuda.reset_peak_memory_stats(s.device)
        done, start = 0, time.perf_counter()
        while done < s.sizes.train_steps and s.time_left():
            trainer.train_step()
            done += 1
        sync(s.device)
        seconds = time.perf_counter() - start
        images_s = done * out["batch"] / seconds if done else 0.0
        arm = {"steps": done, "first_step_s": warm, "images_per_s": images_s,
               "s_per_kimg": 1000 / images_s if images_s else None, "log": logged}
        if s.peak() and images_s:
            arm["mfu"] = images_s * flops_per_image / s.peak()
        if s.cuda:
            arm["peak_memory_gib"] = torch.cuda.max_memory_allocated(s.device) / 2**30
        if name == "compile":
            arm["compiled"] = not any("torch.compile failed" in line for line in logged)
        out["arms"][name] = arm
        s.save(out)
        del trainer
        if s.cuda:
            torch.cuda.empty_cache()
    timed = {k: a["images_per_s"] for k, a in out["arms"].items() if a.get("images_per_s")}
    out["fastest"] = max(timed, key=timed.get) if timed else None
    out["all_reduce"] = all_reduce(s, sum(p.numel() for p in Generator(cfg.model).parameters()))
    return out


def all_reduce(s: Step, numel: int) -> dict:
    """One process group of one rank (NCCL on CUDA, gloo on a CPU), a few all-reduces of a
    vector of G's gradient size: the path `all_reduce_gradients` takes between workers."""
    import torch.distributed as dist

    backend = "nccl" if s.cuda else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{free_port()}", rank=0, world_size=1)
    try:
        flat = torch.ones(numel, device=s.device)
        dist.all_reduce(flat)
        sync(s.device)
        start = time.perf_counter()
        for _ in range(5):
            dist.all_reduce(flat)
        sync(s.device)
        ok = bool(torch.all(flat == 1.0))
        seconds = (time.perf_counter() - start) / 5
    finally:
        dist.destroy_process_group()
    return {"backend": backend, "ranks": 1, "numel": numel, "ms": seconds * 1000, "sum_ok": ok,
            **({} if s.cuda else {"notes": "NCCL needs CUDA: gloo ran instead"})}


def inversion_setup(s: Step, preset: str):
    from deeplandscape.config import load_config
    from deeplandscape.invert.encoder import build_encoder, mean_w
    from deeplandscape.nets.generator import Generator

    torch.manual_seed(0)
    cfg = load_config(preset)
    G = Generator(cfg.model).to(s.device).eval().requires_grad_(False)
    E = build_encoder(cfg, pretrained=False).to(s.device).eval().requires_grad_(False)
    E.w_avg.copy_(mean_w(G))
    return cfg, G, E


def step_inversion(s: Step) -> dict:
    from inversion_speed import flops_per_photo  # bench/inversion_speed.py

    from deeplandscape.invert.inversion import Inverter

    cfg, G, E = inversion_setup(s, s.sizes.preset)
    n = s.sizes.inversion_steps
    icfg = dataclasses.replace(cfg.invert, opt_steps=n, finetune_steps=n, opt_patience=10**9,
                               opt_perceptual=0.0, finetune_perceptual=0.0)
    res = cfg.model.resolution
    inverter = Inverter(G, res, 1.0, icfg, E)
    photos = torch.rand(max(s.sizes.inversion_batches), 3, res, res, device=s.device) * 2 - 1
    inverter.invert(photos[:1], "EOIF")  # warm-up
    o_flops, f_flops = flops_per_photo(inverter, photos[:1])
    out = {"preset": s.sizes.preset, "resolution": res, "o_steps": n, "f_steps": n, "loss": "L1 (no LPIPS)",
           "flops_per_photo": o_flops + f_flops, "batches": {}}
    for b in s.sizes.inversion_batches:
        if not s.time_left():
            out["batches"][str(b)] = s.skip("out of this step's time budget")
            continue
        if s.cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(s.device)
        sync(s.device)
        start = time.perf_counter()
        inverter.invert(photos[:b], "EOIF")
        sync(s.device)
        seconds = time.perf_counter() - start
        row = {"photos_per_s": b / seconds, "s_per_photo": seconds / b}
        if s.peak():
            row["mfu"] = (o_flops + f_flops) * b / seconds / s.peak()
        if s.cuda:
            row["peak_memory_per_photo_gib"] = torch.cuda.max_memory_allocated(s.device) / 2**30 / b
        out["batches"][str(b)] = row
        s.save(out)
    rates = {b: r["photos_per_s"] for b, r in out["batches"].items() if "photos_per_s" in r}
    if "1" in rates:
        for b, rate in rates.items():
            out["batches"][b]["vs_b1"] = rate / rates["1"]
    if rates:
        best = max(rates, key=rates.get)
        # The config's step counts (500 + 500): time per photo scales with the steps.
        out["best_batch"] = int(best)
        out["s_per_photo_at_config_steps"] = (out["batches"][best]["s_per_photo"]
                                              * (cfg.invert.opt_steps + cfg.invert.finetune_steps) / (2 * n))
        out["config_steps"] = [cfg.invert.opt_steps, cfg.invert.finetune_steps]
    return out


def step_render(s: Step) -> dict:
    from deeplandscape.animate.homography import CLOCK_DIRECTIONS
    from deeplandscape.config import load_config
    from deeplandscape.nets.generator import Generator
    from deeplandscape.render import Animation, render_video
    from deeplandscape.video import VideoWriter

    cfg = load_config(s.sizes.preset)
    G = Generator(cfg.model).to(s.device).eval()
    res, frames, batch = cfg.model.resolution, s.sizes.frames, s.sizes.render_batch
    directions = list(CLOCK_DIRECTIONS)[: s.sizes.homographies]
    for _ in render_video(G, 0, batch, res, 1.0, Animation(), batch=batch, device=s.device):
        pass  # warm-up
    videos, start = [], time.perf_counter()
    for k, d in enumerate(directions):
        chunks = list(render_video(G, k, frames, res, 1.0, Animation(motion=CLOCK_DIRECTIONS[d], speed=2.5),
                                   batch=batch, device=s.device))  # uint8 on the host, as the encoder takes it
        videos.append(chunks)
    g_s = time.perf_counter() - start
    start = time.perf_counter()
    for k, chunks in enumerate(videos):
        with VideoWriter(s.tmp / f"{k}.mp4", fps=30, width=res, height=res) as w:
            for c in chunks:
                w.write(c)
    enc_s = time.perf_counter() - start
    total = len(directions) * frames
    out = {"preset": s.sizes.preset, "resolution": res, "videos": len(directions), "frames": frames,
           "frames_per_g_call": batch, "g_frames_per_s": total / g_s, "encoder_frames_per_s": total / enc_s,
           "s_per_photo": g_s + enc_s}
    out["bound_by"] = "G (render)" if g_s > enc_s else "the encoder"
    return out


def step_superres(s: Step) -> dict:
    from deeplandscape.config import SuperResConfig, load_config
    from deeplandscape.superres.blend import guided_filter_params
    from deeplandscape.superres.nets import SCALE, RRDBNet
    from deeplandscape.superres.resolver import SuperResolver

    cfg = load_config(s.sizes.sr_preset)
    sr = cfg.superres if s.sizes.sr_preset == "tiny" else SuperResConfig()
    lo = cfg.model.resolution
    hi = min(SCALE * lo, sr.max_size)
    net = RRDBNet(sr.nf, sr.nb, sr.gc).to(s.device).eval().requires_grad_(False)
    n = s.sizes.sr_frames
    resolver = SuperResolver(net, dataclasses.replace(sr, frames_batch=n), s.device)
    lr = torch.rand(n, 3, lo, lo, device=s.device) * 2 - 1
    photo = torch.rand(3, hi, hi, device=s.device) * 2 - 1
    mask = (torch.rand(1, hi, hi, device=s.device) > 0.5).float()
    resolver.upscale(lr, photo, mask)  # warm-up
    calls, start = 0, time.perf_counter()
    while calls < 3 and (calls == 0 or s.time_left()):
        resolver.upscale(lr, photo, mask)
        calls += 1
    sync(s.device)
    seconds = (time.perf_counter() - start) / (calls * n)
    radius, subsample = guided_filter_params(hi, sr.guided_radius, sr.guided_subsample)
    return {"network": f"{sr.nf} x {sr.nb} RRDB", "from_px": lo, "to_px": hi, "bf16": s.cuda,
            "guided_filter": {"radius": radius, "subsample": subsample}, "frames_per_s": 1 / seconds}


def step_features(s: Step) -> dict:
    from deeplandscape.evaluate import weights
    from deeplandscape.evaluate.fid import InceptionFeatures
    from deeplandscape.evaluate.fvd import CLIP_LEN, I3DFeatures
    from deeplandscape.evaluate.stand_ins import write_stand_in_weights

    path = write_stand_in_weights(s.tmp / "weights", ("inception",))["inception"]
    inception = InceptionFeatures(s.device, weights_path=path)
    n = s.sizes.inception_images
    images = torch.randint(0, 256, (n, 256, 256, 3), dtype=torch.uint8).numpy()
    inception.features(images[: min(8, n)])  # warm-up
    start = time.perf_counter()
    inception.features(images, batch_size=min(64, n))
    out = {"inception": {"weights": "random, the real shapes (speed does not depend on them)", "images": n,
                         "images_per_s": n / (time.perf_counter() - start)}}
    i3d = weights.cache_dir() / weights.REGISTRY["i3d"].filename
    if not i3d.is_file():
        out["i3d"] = s.skip(f"no I3D file at {i3d} (deeplandscape weights fetch i3d; $DEEPLANDSCAPE_WEIGHTS names "
                            "another folder)")
        return out
    features = I3DFeatures(s.device)
    clips = torch.randint(0, 256, (s.sizes.i3d_clips, CLIP_LEN, 224, 224, 3), dtype=torch.uint8).numpy()
    features.features(clips[:1])  # warm-up
    start = time.perf_counter()
    features.features(clips, batch_size=s.sizes.i3d_clips)
    out["i3d"] = {"file": str(i3d), "clips": len(clips), "frames_per_clip": CLIP_LEN,
                  "clips_per_s": len(clips) / (time.perf_counter() - start)}
    return out


def step_bucket(s: Step) -> dict:
    from animate_bucket_speed import random_run  # bench/animate_bucket_speed.py

    from deeplandscape.config import load_config
    from deeplandscape.data.synth import write_dataset
    from deeplandscape.invert.bucket import BucketJob, animate_bucket

    cfg = load_config(s.sizes.preset)
    run_dir = random_run(cfg, str(s.tmp / "run"))
    res, n, steps = cfg.model.resolution, s.sizes.bucket_photos, s.sizes.bucket_steps
    write_dataset(s.tmp / "data", images=n, videos=0, frames=2, size=res, seed=3)
    icfg = dataclasses.replace(cfg.invert, batch=min(n, 8), opt_steps=steps, finetune_steps=steps,
                               opt_patience=10**9, opt_perceptual=0.0, finetune_perceptual=0.0)
    job = BucketJob(str(s.tmp / "data" / "photos"), str(s.tmp / "out"), run_dir,
                    homographies=s.sizes.bucket_homographies, frames=s.sizes.bucket_frames,
                    workers=1, gpu=s.cuda, cpus_per_worker=1)
    start = time.perf_counter()
    summary = animate_bucket(job, icfg, log=print)  # starts a local Ray, as the command does
    seconds = time.perf_counter() - start
    return {"photos": n, "ok": summary["ok"], "actor": "1 GPU" if s.cuda else "1 CPU",
            "o_steps": steps, "f_steps": steps, "videos_per_photo": job.homographies, "frames": job.frames,
            "pipeline_s": summary["pipeline_s"], "photos_per_hour": summary["photos_per_hour"],
            "seconds_with_ray_start": seconds, "mean_stage_s": summary["mean_stage_s"]}


STEP_FUNCTIONS = {"device": step_device, "train": step_train, "inversion": step_inversion, "render": step_render,
                  "superres": step_superres, "features": step_features, "bucket": step_bucket}


# --- running the steps ------------------------------------------------------------------------------
def run_child(args: argparse.Namespace) -> int:
    """`--step NAME`: one step in this process; its result (or its error) as JSON to --result."""
    sizes = TINY if args.tiny else Sizes()
    earlier = json.loads(Path(args.earlier).read_text()) if args.earlier else {}
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"gpu-check-{args.step}-") as tmp:
        try:
            device = torch.device(args.device)
            if device.type == "cuda" and not torch.cuda.is_available():
                raise RuntimeError("--device cuda, but torch sees no CUDA device (use --device cpu --tiny on a CPU)")
            step = Step(device, sizes, budget(args.step, args.tiny), earlier, Path(tmp), Path(args.result))
            result = {"status": "ok", "figures": STEP_FUNCTIONS[args.step](step)}
        except Exception as e:  # recorded; the parent goes on with the next step
            traceback.print_exc()
            result = {"status": "error", "error": f"{type(e).__name__}: {e}".splitlines()[0][:500]}
    result["seconds"] = time.perf_counter() - start
    Path(args.result).write_text(json.dumps(result, indent=2, default=str))
    return 0


def run_all(args: argparse.Namespace) -> int:
    out = Path(args.out)
    (out / "logs").mkdir(parents=True, exist_ok=True)
    steps = [s for s in STEPS if s in (args.only or STEPS)]
    results: dict = {}
    started = time.perf_counter()
    print(f"gpu-check on {args.device}{' (tiny sizes)' if args.tiny else ''}: {len(steps)} steps, "
          f"at most {sum(budget(s, args.tiny) for s in steps):.0f} s; results in {out}/")
    for i, name in enumerate(steps, 1):
        earlier = out / "logs" / "earlier.json"
        earlier.write_text(json.dumps(results, default=str))
        result_path = out / "logs" / f"{name}.json"
        result_path.unlink(missing_ok=True)
        cmd = [sys.executable, __file__, "--step", name, "--device", args.device, "--result", str(result_path),
               "--earlier", str(earlier), *(["--tiny"] if args.tiny else []),
               *(["--threads", str(args.threads)] if args.threads else [])]
        t0 = time.perf_counter()
        with open(out / "logs" / f"{name}.log", "w") as log:
            try:
                proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, timeout=budget(name, args.tiny))
                if result_path.is_file():
                    result = json.loads(result_path.read_text())
                    if result["status"] == "partial":  # the process died in the middle of the step
                        result.update(status="error", error=f"the step's process ended with code {proc.returncode} "
                                                            "(the figures so far are kept)")
                else:
                    result = {"status": "error", "error": f"the step's process ended with code {proc.returncode} "
                                                          "and left no result"}
            except subprocess.TimeoutExpired:
                kept = json.loads(result_path.read_text()) if result_path.is_file() else {}
                result = {**kept, "status": "error", "error": f"over its {budget(name, args.tiny):.0f} s budget: stopped"
                                                             f"{' (the figures so far are kept)' if kept else ''}"}
        result["wall_s"] = time.perf_counter() - t0
        result["log"] = str(out / "logs" / f"{name}.log")
        results[name] = result
        print(f"[{i}/{len(steps)}] {name:9s} {result['status']:5s} {result['wall_s']:5.1f} s  {headline(name, result)}",
              flush=True)
    (out / "logs" / "earlier.json").unlink(missing_ok=True)
    report = {"device": args.device, "tiny": args.tiny, "wall_s": time.perf_counter() - started,
              "goals": check_goals(results, args), "steps": results}
    (out / "gpu-check.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "gpu-check.md").write_text(markdown(report))
    failed = [n for n, r in results.items() if r["status"] != "ok"]
    print(f"done in {report['wall_s']:.0f} s: {len(results) - len(failed)} of {len(results)} steps ok"
          f"{' (failed: ' + ', '.join(failed) + ')' if failed else ''}; {out}/gpu-check.md, {out}/gpu-check.json")
    return 0


def headline(name: str, result: dict) -> str:
    """The step's main figure in one line."""
    if result["status"] != "ok":
        return result["error"]
    f = result["figures"]
    if name == "device":
        return f"{f['name']}: bf16 {f['bf16_matmul_tflops']:.2f} TFLOP/s, float32 {f['float32_matmul_tflops']:.2f}"
    if name == "train":
        parts = [f"{k} {a['images_per_s']:.1f} img/s" + (f" (MFU {a['mfu']:.1%})" if "mfu" in a else "")
                 for k, a in f["arms"].items() if "images_per_s" in a]
        return f"{f['resolution']} px: " + ", ".join(parts) + f"; fastest {f['fastest']}"
    if name == "inversion":
        return ", ".join(f"B={b} {r['photos_per_s']:.2f} photos/s ({r.get('vs_b1', 1):.1f}x)"
                         for b, r in f["batches"].items() if "photos_per_s" in r)
    if name == "render":
        return f"G {f['g_frames_per_s']:.0f} frames/s, encoder {f['encoder_frames_per_s']:.0f} frames/s: bound by {f['bound_by']}"
    if name == "superres":
        return f"{f['from_px']} -> {f['to_px']} px: {f['frames_per_s']:.2f} frames/s"
    if name == "features":
        i3d = f["i3d"]
        return (f"Inception {f['inception']['images_per_s']:.1f} images/s; I3D "
                + (f"{i3d['clips_per_s']:.2f} clips/s" if "clips_per_s" in i3d else "skipped"))
    if name == "bucket":
        stages = ", ".join(f"{k[:-2]} {v:.3f}" for k, v in f["mean_stage_s"].items() if v is not None)
        return (f"{f['ok']}/{f['photos']} photos, {f['photos_per_hour']:.0f} photos/h in the pipeline "
                f"({f['seconds_with_ray_start']:.0f} s with Ray's start); s per photo: {stages}")
    return ""


def check_goals(results: dict, args: argparse.Namespace) -> list[dict]:
    """Each goal: the figure measured, the target, and met / missed (or n/a on a CPU or tiny run)."""
    def fig(step, *keys):
        r = results.get(step, {})
        v = r.get("figures") if r.get("status") == "ok" else None
        for k in keys:
            v = v.get(k) if isinstance(v, dict) else None
        return v

    applies = args.device.startswith("cuda") and not args.tiny
    arms = fig("train", "arms") or {}
    mfu = max((a["mfu"] for a in arms.values() if "mfu" in a), default=None)
    inv = fig("inversion", "s_per_photo_at_config_steps")
    ren = fig("render", "s_per_photo")
    ratio = fig("inversion", "batches", "32", "vs_b1")
    rows = [("training bf16 MFU at 256 px", mfu, GOALS["train_mfu"], ">="),
            ("EOIF (500 + 500 steps) + 5 x 100 frames, s per photo", inv + ren if inv and ren else None,
             GOALS["photo_s"], "<="),
            ("inversion photos/s, B = 32 over B = 1", ratio, GOALS["batch_ratio"], ">=")]
    out = []
    for what, value, target, op in rows:
        if value is None:
            verdict = "not measured"
        elif not applies:
            verdict = "n/a (the goals are for the paper sizes on a GPU)"
        else:
            verdict = "met" if (value >= target if op == ">=" else value <= target) else "missed"
        out.append({"goal": what, "measured": value, "target": f"{op} {target:g}", "verdict": verdict})
    return out


def markdown(report: dict) -> str:
    steps = report["steps"]
    dev = steps.get("device", {}).get("figures", {})
    lines = [f"# GPU check: {dev.get('name', report['device'])}", "",
             f"device `{report['device']}`{' (tiny sizes)' if report['tiny'] else ''}, torch {dev.get('torch', '?')}, "
             f"CUDA {dev.get('cuda')}, {report['wall_s']:.0f} s in all", "",
             "| step | status | s | result |", "|---|---|---:|---|"]
    for name, r in steps.items():
        lines.append(f"| {name} | {r['status']} | {r['wall_s']:.1f} | {headline(name, r)} |")
    lines += ["", "| goal | measured | target | verdict |", "|---|---:|---|---|"]
    for g in report["goals"]:
        m = g["measured"]
        lines.append(f"| {g['goal']} | {'-' if m is None else f'{m:.3g}'} | {g['target']} | {g['verdict']} |")
    notes = [f"- {n}{' / ' + where if where else ''}: {text}" for n, r in steps.items()
             for where, text in _notes(r.get("figures") or {})]
    if notes:
        lines += ["", "Skipped and notes:"] + notes
    return "\n".join(lines) + "\n"


def _notes(figures: dict, where: str = ""):
    """(where, text) of every "skipped" and "notes" entry, at any depth."""
    for k, v in figures.items():
        at = f"{where}.{k}" if where else k
        if k in ("skipped", "notes"):
            yield where, "; ".join(v) if isinstance(v, list) else v
        elif isinstance(v, dict):
            yield from _notes(v, at)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    ap.add_argument("--tiny", action="store_true", help="the tiny preset and small counts (a CPU smoke run)")
    ap.add_argument("--out", default="gpu-check", help="folder for gpu-check.json, gpu-check.md and logs/")
    ap.add_argument("--only", nargs="+", choices=STEPS, help="run these steps only")
    ap.add_argument("--threads", type=int, default=0, help="torch threads in each step (0: torch's default)")
    ap.add_argument("--step", choices=STEPS, help=argparse.SUPPRESS)  # a child: run one step
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--earlier", help=argparse.SUPPRESS)
    args = ap.parse_args()
    return run_child(args) if args.step else run_all(args)


if __name__ == "__main__":
    sys.exit(main())
