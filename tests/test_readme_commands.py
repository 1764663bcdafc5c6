"""The README's commands, run as a user runs them.

Each command is taken from README.md character for character (a test fails when the README
changes without it), run by `bash` in a fresh process whose working directory is a temporary
folder, with relative paths, no Ray started beforehand and Ray's environment as a user has it
(no RAY_ADDRESS, no RAY_AUTH_MODE). Flags appended to a command only make it tiny and fast
(`--set train.total_kimg=...`). Each asserts what a user would look for, and that the terminal
shows our lines, not Ray's internal ones.

The commands share one working folder, as in the README's walk-through: the data of `synth`,
the run that `train` makes, the encoder of `train-encoder`.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from deeplandscape.animate.homography import load_motions
from deeplandscape.config import Config, apply_overrides, load_config, parse_set
from deeplandscape.invert.encoder import run_encoder_worker
from deeplandscape.runs import encoder_dir
from deeplandscape.runs import load_model
from deeplandscape.train.checkpoint import latest_checkpoint
from deeplandscape.video import probe_video, read_video
from tests.evaluate.conftest import write_i3d_stand_in
from tests.authors.authors_files import forget_their_code, their_checkpoint, their_encoder, their_lighting
from tests.invert.test_ade20k import write_their_files

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text()
BIN = Path(sys.executable).parent

# Ray's internal output: worker-prefixed lines, its log records, C++ logs, tracebacks, progress bars.
RAY_NOISE = re.compile(r"pid=\d+\)|^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+\s+(INFO|WARNING|ERROR)|core_worker|raylet"
                       r"|Traceback|\[repeated \d+x|Running Dataset|Execution plan|Tip: |PlacementGroup|✔️|\x1b\[")

# Tiny settings appended to README commands (the README's own values are for a real first run):
# 32 px from the start, 16 images a step, 20 steps, a checkpoint and a snapshot every 10.
# (A re-run with a longer schedule resumes: tests/train/test_s3_run.py runs that command.)
FAST_TRAIN = ["--set", "train.start_resolution=32", "--set", "train.log_every=5", "--set", "train.sample_kimg=0.16",
              "--set", "train.checkpoint_kimg=0.16", "--set", "train.total_kimg=0.32"]
TRAIN = "deeplandscape train --config tiny --images data/photos --videos data/videos --run-dir runs/exp1"
FAST_INVERT = ["--set", "invert.opt_steps=4", "--set", "invert.finetune_steps=4"]


def user_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell with the project installed: our venv on PATH, no Ray
    variables that the test session set for itself."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return {**env, **extra}


def readme_command(command: str) -> str:
    """`command` as the README shows it (it must be there, on one line)."""
    assert command in README, f"the README no longer shows: {command}"
    return command


def run(cwd: Path, command: str, *extra: str, timeout: float = 300, env: dict | None = None,
        expect: int = 0, insert: tuple[str, str] | None = None) -> str:
    """Run a README command in `cwd` as a user would, `extra` appended (and `insert[1]` put
    after `insert[0]`: another positional argument); its terminal output (stdout + stderr)."""
    line = readme_command(command)
    if insert:
        line = line.replace(insert[0], f"{insert[0]} {insert[1]}", 1)
    line = " ".join([line, *map(shlex.quote, extra)])
    done = subprocess.run(["bash", "-c", line], cwd=cwd, env=env or user_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=timeout)
    assert done.returncode == expect, f"$ {line}\nexit {done.returncode}:\n{done.stdout[-4000:]}"
    noise = [ln for ln in done.stdout.splitlines() if RAY_NOISE.search(ln)]
    assert not noise, f"$ {line}\nRay's internal output on the terminal:\n" + "\n".join(noise[:20])
    return done.stdout


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """The README's first two steps in a fresh folder: synthetic data, then a tiny trained run."""
    cwd = tmp_path_factory.mktemp("user")
    out = run(cwd, "deeplandscape synth data --images 32 --videos 4 --frames 16 --size 64", timeout=120)
    assert "wrote 32 photos and 4 videos" in out
    (cwd / "data/photos/empty.jpg").write_bytes(b"")  # one unreadable photo: skipped with a reason
    out = run(cwd, TRAIN, *FAST_TRAIN, timeout=600)
    assert re.search(r"skipped \S*data/photos/empty\.jpg: .*not a known image format", out), out
    assert "Ray: started a local Ray" in out and re.search(r"step\s+\d+\s+kimg", out), out
    assert "done: checkpoints/, metrics.jsonl and samples/ are in" in out
    return cwd


def test_train_writes_a_run_and_a_finished_run_says_so_without_starting_ray(work):
    run_dir = work / "runs/exp1"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["data"]["images"] == str(work / "data/photos") and config["train"]["total_kimg"] == 0.32
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-00000010", "step-00000020"]
    assert [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()] == [5, 10, 15, 20]
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert probe_video(run_dir / "samples/video-000000.2.mp4").num_frames == 16
    out = run(work, TRAIN, *FAST_TRAIN, timeout=60)
    assert "is finished" in out and "Ray:" not in out
    out = run(work, TRAIN, "--dry-run", timeout=60)
    assert "phase 0" in out and "Ray:" not in out


def test_sample_in_one_process_and_on_ray_data_name_files_alike(work):
    out = run(work, "deeplandscape sample --run-dir runs/exp1 --out samples --videos 4 --frames 60 --direction 3h",
              "--videos", "2", "--frames", "10", "--fps", "12", "--scale", "2", "--speed", "x2.5", "--gif")
    assert "wrote 2 videos, grid.png and manifest.parquet" in out
    for i in range(2):
        frames, fps = read_video(work / f"samples/sample-{i:04d}-3h.mp4")
        assert frames.shape == (10, 64, 64, 3) and fps == 12  # the 32 px model, --scale 2
        assert Image.open(work / f"samples/sample-{i:04d}-3h.jpg").size == (64, 64)
        assert Image.open(work / f"samples/sample-{i:04d}-3h.gif").n_frames == 10
    assert np.asarray(Image.open(work / "samples/grid.png")).shape == (2 * 64, 6 * 64, 3)
    # Through Ray Data: an actor pool loading the generator once per actor; the same names.
    out = run(work, "deeplandscape sample --run-dir runs/exp1 --out samples-ray --videos 4 --frames 60 --workers 2",
              "--videos", "5", "--frames", "6")
    assert "wrote 5 videos (0 failed), grid.png and manifest.parquet" in out
    rows = pq.read_table(work / "samples-ray/manifest.parquet").to_pylist()
    assert [r["seed"] for r in rows] == [0, 1, 2, 3, 4] and not any(r["error"] for r in rows)
    for r in rows:
        assert Path(r["uri"]).name == f"sample-{r['seed']:04d}-{r['direction']}.mp4"
        assert probe_video(r["uri"]).num_frames == 6
    assert len({r["direction"] for r in rows}) > 1  # "random" (the default) draws per video
    assert (work / "samples-ray/grid.png").is_file() and (work / "samples/manifest.parquet").is_file()


def test_calibrate_motion_then_sample_with_the_measured_motions(work):
    out = run(work, "deeplandscape calibrate-motion --videos data/videos --out motions.json")
    assert "wrote the motions to" in out and (work / "motions.report.json").is_file()
    motions = load_motions(work / "motions.json")
    assert {f"{h}h" for h in range(1, 13)} <= set(motions) and "measured-1" in motions
    run(work, "deeplandscape sample --run-dir runs/exp1 --out samples-measured --homographies motions.json "
              "--direction 3h", "--videos", "1", "--frames", "8")
    assert len(list((work / "samples-measured").glob("*.mp4"))) == 1


@pytest.fixture(scope="module")
def shards(work):
    out = run(work, "deeplandscape prepare --images data/photos --videos data/videos --out shards")
    assert re.search(r"prepared 32 photos and 4 videos .* skipped 1 file", out), out
    return work / "shards"


def test_prepare_then_train_from_the_shards_streams_on_two_cores(work, shards):
    """A few steps across the 8 -> 16 px phase change, the data streamed by Ray Data on the CPU
    the training worker leaves free."""
    out = run(work, "deeplandscape train --config tiny --images shards --run-dir runs/streamed",
              "--set", 'train.batch={"8": 8}', "--set", "train.phase_kimg=0.016", "--set", "train.fade_kimg=0.008",
              "--set", "train.max_steps=4", "--set", "train.log_every=2", "--set", "train.sample_kimg=0")
    assert "1 worker(s) on cpu, 1 torch thread(s) each" in out and "done:" in out
    metrics = [json.loads(line) for line in (work / "runs/streamed/metrics.jsonl").read_text().splitlines()]
    assert [(m["step"], m["resolution"]) for m in metrics] == [(2, 8), (4, 16)]
    assert all(np.isfinite(v) for m in metrics for k, v in m.items() if k.startswith(("D_", "G_")))


@pytest.fixture(scope="module")
def encoder(work):
    """`train-encoder` on the run (3 steps), then a second call's resume checked in-process."""
    sets = ["invert.encoder_batch=8", "invert.encoder_log_every=1"]
    out = run(work, "deeplandscape train-encoder --run-dir runs/exp1", "--max-steps", "3",
              *(a for s in sets for a in ("--set", s)))
    assert "done: encoder checkpoints" in out and re.search(r"encoder step\s+3", out), out
    assert latest_checkpoint(encoder_dir(str(work / "runs/exp1"))).step == 3
    # A second call resumes. In-process (the function every Ray Train worker runs), to pay Ray
    # Train's start once.
    cfg = apply_overrides(Config.from_dict(load_model(str(work / "runs/exp1")).cfg.to_dict()), parse_set(sets))
    run_encoder_worker(cfg, str(work / "runs/exp1"), max_steps=3)
    steps = [json.loads(line)["step"] for line in (work / "runs/exp1/encoder/metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]
    return work / "runs/exp1/encoder"


def test_train_encoder_then_animate_photos_with_one_missing(work, encoder):
    out = run(work, "deeplandscape animate data/photos/00000.png data/photos/00001.png --run-dir runs/exp1 "
                    "--out animated --directions 2 --frames 60", "--frames", "8", *FAST_INVERT,
              insert=("data/photos/00001.png", "missing.jpg"))
    assert "skipped: no such photo or folder" in out and "EOIFS" in out
    summary = json.loads((work / "animated/summary.json").read_text())
    assert summary["animated"] == 2 and [f["input"] for f in summary["failed"]] == [str(work / "missing.jpg")]
    videos = sorted((work / "animated/00000").glob("*.mp4"))
    assert len(videos) == 2 and probe_video(videos[0]).num_frames == 8


def test_animate_bucket_from_a_shell(work, encoder):
    # A manifest picks two of the photos and the empty file, to keep the job short.
    uris = [str(work / "data/photos" / n) for n in ("00003.png", "00004.png", "empty.jpg")]
    pq.write_table(pa.table({"uri": uris}), work / "pick.parquet")
    out = run(work, "deeplandscape animate-bucket data/photos animated-bucket --run-dir runs/exp1 --directions 2 "
                    "--frames 60", "--manifest", "pick.parquet", "--directions", "45deg", "--speed", "12px/s",
              "--frames", "6", *FAST_INVERT)
    assert "Ray has not been started" not in out
    assert "speed 12px/s at 32 px and 30 fps = x2.5 of the motions" in out  # the units people think in
    assert len(list((work / "animated-bucket").glob("*/done.json"))) == 2
    assert probe_video(work / "animated-bucket/00003/45deg.mp4").num_frames == 6
    summary = json.loads(next((work / "animated-bucket/_runs").glob("*/summary.json")).read_text())
    assert summary["ok"] == 2 and summary["failed"] == 1


def test_lighting_from_a_shell(work, encoder):
    out = run(work, "deeplandscape train-lighting --run-dir runs/exp1", "--max-steps", "40",
              "--set", "invert.lighting_log_every=20")
    assert "done:" in out
    run(work, "deeplandscape animate data/photos/00002.png --run-dir runs/exp1 --out lit --lighting day-to-night "
              "--directions 1 --frames 90", "--frames", "12", *FAST_INVERT)
    assert probe_video(next((work / "lit/00002").glob("*.mp4"))).num_frames == 12


def test_inversion_sweep_from_a_shell(work, encoder, image_stand_ins):
    """`python tune/inversion.py` from the repository root (here: a link to its tune/ folder),
    relative paths reaching Tune's trials, which run in folders of their own."""
    (work / "tune").symlink_to(REPO / "tune")
    out = run(work, "python tune/inversion.py --run-dir runs/exp1 --photos data/photos --samples 32",
              "--samples", "2", "--max-photos", "2", "--report-every", "2", "--frames", "4", "--cpus-per-trial", "1",
              "--set", "invert.opt_steps=4", "--set", "invert.finetune_steps=4",
              env=user_env(DEEPLANDSCAPE_WEIGHTS=str(image_stand_ins)))
    assert re.search(r"^trial \S+: steps 2  objective [0-9.]+$", out, re.M), out
    assert "best: trial" in out and (work / "sweeps/inversion/best.toml").is_file()
    assert "Trial status" not in out  # Tune's own status tables stay off the terminal


def test_weights_status_names_missing_files_and_where_they_go(tmp_path):
    cache = tmp_path / "weights"
    cache.mkdir()
    (cache / "pt_inception-2015-12-05-6726825d.pth").write_bytes(b"x" * 10)
    out = run(tmp_path, "deeplandscape weights status", env=user_env(DEEPLANDSCAPE_WEIGHTS="weights"), timeout=60)
    assert "inception  present" in out and "vgg16      MISSING" in out and str(cache) in out


# --- bad input and would-be hangs: one line, at once ----------------------------------------------
def test_a_missing_path_fails_on_the_driver_naming_the_flag(work):
    out = run(work, TRAIN, "--images", "data/nothing-here", expect=2, timeout=60)
    assert out.strip() == "deeplandscape train: error: --images data/nothing-here: no such file or folder"


def test_more_workers_than_cpus_is_one_line_not_a_hang(work, shards):
    out = run(work, TRAIN, "--run-dir", "runs/too-many", "--workers", "3", expect=2, timeout=120)
    assert out.splitlines()[-1] == ("deeplandscape train: error: training (3 worker(s) x 1 CPU) needs 3 CPUs but "
                                    "the cluster has 2: use fewer --workers, or --set scale.cpus_per_worker=N")
    out = run(work, "deeplandscape train --config tiny --images shards --run-dir runs/streamed",
              "--run-dir", "runs/no-decode-cpu", "--set", "scale.cpus_per_worker=2", expect=2, timeout=120)
    assert "needs 3 CPUs but the cluster has 2" in out.splitlines()[-1]
    assert not (work / "runs/too-many").exists() and not (work / "runs/no-decode-cpu").exists()


def test_animate_refuses_settings_the_run_fixes(work):
    out = run(work, "deeplandscape animate data/photos/00000.png data/photos/00001.png --run-dir runs/exp1 "
                    "--out animated --directions 2 --frames 60", "--set", "train.total_kimg=3", expect=2, timeout=60)
    assert "--set train.total_kimg: only invert.* fields can be set here" in out


def test_demo_gallery_has_playable_videos(tmp_path):
    """`make demo`'s command (with a very short schedule): its gallery shows playable videos."""
    out = run(tmp_path, "deeplandscape demo --out outputs/demo",
              "--set", "train.total_kimg=0.16", "--set", 'train.batch={"8": 16}', "--set", "train.sample_kimg=0.08",
              "--set", "train.log_every=5", "--set", "invert.encoder_kimg=0.064", "--set", "invert.encoder_batch=16",
              "--set", "invert.opt_steps=5", "--set", "invert.finetune_steps=5", "--set", "invert.lighting_steps=40",
              "--set", "invert.lighting_log_every=20", timeout=900)
    index = tmp_path / "outputs/demo/index.html"
    assert out.splitlines()[-1] == f"gallery: {index}"
    page = index.read_text()
    videos = re.findall(r'<video src="([^"]+\.mp4)"', page)
    samples = [v for v in videos if v.startswith("samples/")]
    assert len(samples) >= 4
    for v in samples:
        info = probe_video(index.parent / v)
        assert info.num_frames == 90 and info.width == info.height == 128  # 8 px model shown at x16
    animated = [v for v in videos if v.startswith("animated/")]
    assert len(animated) == 4 * 2  # four photos, two homographies each
    assert all(probe_video(index.parent / v).num_frames == 60 for v in animated)
    lit = [v for v in videos if v.startswith("lighting/")]
    assert len(lit) == 1 and probe_video(index.parent / lit[0]).num_frames == 90  # day to night
    images = re.findall(r'<img src="([^"]+)"', page)
    assert sum(i.endswith("compare.png") for i in images) == 4
    assert all((index.parent / i).is_file() for i in images)
    assert any("grid-" in i for i in images)  # training snapshots


def test_the_authors_models_imported_then_sampled_and_animated(tmp_path):
    """Their results/ folder (a narrow generator in their exact layout) and their CSV motions."""
    (tmp_path / "results/checkpoints/256").mkdir(parents=True)
    torch.save(their_checkpoint(resolution=256), tmp_path / "results/checkpoints/256/475000.model")
    (tmp_path / "results/encoders/256_resnet/models").mkdir(parents=True)
    torch.save(their_encoder(tmp_path / "src", levels=7, w_size=32),  # 4 .. 256 px
               tmp_path / "results/encoders/256_resnet/models/best_model.pth")
    (tmp_path / "results/encoders/256_mlp/models").mkdir(parents=True)
    torch.save(their_lighting(tmp_path / "src", w_size=32), tmp_path / "results/encoders/256_mlp/models/best_model.pth")
    forget_their_code(tmp_path / "src")
    torch.save(their_checkpoint(resolution=256, seed=5), tmp_path / "results/checkpoints/256/5000.model")  # older
    (tmp_path / "homographies/manual_homographies_x2.5").mkdir(parents=True)
    (tmp_path / "homographies/manual_homographies_x2.5/m01.csv").write_text("-1e-3 1e-2\n-2.5e-2 1e-2\n-5e-5 5e-5\n"
                                                                            "-5e-4 5e-5\n")
    out = run(tmp_path, "deeplandscape import-authors results/ --resolution 256 --run-dir runs/authors256",
              timeout=120)
    assert "imported g_running and generator of" in out and "475000.model" in out and "resnet18" in out
    assert "the lighting network" in out
    model = load_model(str(tmp_path / "runs/authors256"))
    assert (model.resolution, model.alpha, model.cfg.model.g_padding) == (256, 1.0, "zeros")
    out = run(tmp_path, "deeplandscape sample --run-dir runs/authors256 --out samples/authors --homographies "
                        "homographies/manual_homographies_x2.5 --direction m01", "--videos", "1", "--frames", "6",
              timeout=180)
    videos = sorted((tmp_path / "samples/authors").glob("*.mp4"))
    assert [v.name for v in videos] == ["sample-0000-m01.mp4"], out
    info = probe_video(videos[0])
    assert (info.num_frames, info.width) == (6, 256)

    # The segmentation files as `weights fetch ade20k` leaves them (stand-ins: sky everywhere).
    write_their_files(tmp_path / "weights", winner=2)
    env = user_env(DEEPLANDSCAPE_WEIGHTS="weights")
    out = run(tmp_path, "deeplandscape weights fetch ade20k", env=env, timeout=60)
    assert "ade20k-encoder: " in out and "ade20k-decoder: " in out  # present: checked, not downloaded
    (tmp_path / "photo.jpg").write_bytes((tmp_path / "samples/authors" / "sample-0000-m01.jpg").read_bytes())
    out = run(tmp_path, "deeplandscape animate photo.jpg --run-dir runs/authors256 --out videos",
              "--directions", "1", "--frames", "4", "--lighting", "day-to-night", "--set", "invert.finetune_perceptual=0",
              *FAST_INVERT, env=env, timeout=300)
    inversion = json.loads((tmp_path / "videos/photo/inversion.json").read_text())
    assert (inversion["method"], inversion["mask"]) == ("EOIFS", "segmentation"), out
    assert probe_video(next((tmp_path / "videos/photo").glob("*.mp4"))).num_frames == 4


# --- the GPU check, on a CPU ------------------------------------------------------------------------
GPU_CHECK_CPU = ".venv/bin/python bench/gpu_check.py --device cpu --tiny"


def checkout_view(cwd: Path) -> None:
    """`cwd` seen as the project's root: its .venv and bench/, where a user runs bench scripts."""
    (cwd / ".venv").symlink_to(BIN.parent, target_is_directory=True)
    (cwd / "bench").symlink_to(REPO / "bench", target_is_directory=True)


def test_gpu_check_on_a_cpu_runs_every_step(tmp_path):
    checkout_view(tmp_path)
    (tmp_path / "weights").mkdir()
    write_i3d_stand_in(tmp_path / "weights" / "i3d_torchscript.pt")  # a user with I3D in their cache
    out = run(tmp_path, GPU_CHECK_CPU, env=user_env(DEEPLANDSCAPE_WEIGHTS="weights"), timeout=400)
    steps = ["device", "train", "inversion", "render", "superres", "features", "bucket"]
    for i, name in enumerate(steps, 1):
        assert re.search(rf"^\[{i}/7\] {name}\s+ok ", out, re.M), out
    assert "done in" in out and "7 of 7 steps ok" in out, out
    report = json.loads((tmp_path / "gpu-check/gpu-check.json").read_text())
    s = {k: v["figures"] for k, v in report["steps"].items()}
    assert s["device"]["peak_flops"] > 0 and s["device"]["cuda"] is None
    arms = s["train"]["arms"]
    assert arms["plain"]["images_per_s"] > 0 and arms["channels_last"]["images_per_s"] > 0
    assert 0 < arms["plain"]["mfu"] and s["train"]["fastest"] in ("plain", "channels_last")
    assert "CPU" in arms["compile"]["skipped"] and "gloo" in s["train"]["all_reduce"]["notes"]
    assert s["train"]["all_reduce"]["sum_ok"] and "float32" in " ".join(s["train"]["notes"])
    batches = s["inversion"]["batches"]
    assert sorted(batches, key=int) == ["1", "8", "32"] and all(b["photos_per_s"] > 0 for b in batches.values())
    c = load_config("tiny")  # the time at the config's step counts is what the goal is stated in
    assert batches["1"]["vs_b1"] == 1.0 and s["inversion"]["config_steps"] == [c.invert.opt_steps,
                                                                               c.invert.finetune_steps]
    assert s["render"]["videos"] == 5 and s["render"]["g_frames_per_s"] > 0 and s["render"]["encoder_frames_per_s"] > 0
    assert s["superres"]["to_px"] == 4 * s["superres"]["from_px"] and s["superres"]["frames_per_s"] > 0
    assert s["features"]["inception"]["images_per_s"] > 0 and s["features"]["i3d"]["clips_per_s"] > 0
    assert s["bucket"]["ok"] == s["bucket"]["photos"] and s["bucket"]["photos_per_hour"] > 0
    assert all(g["verdict"].startswith("n/a") for g in report["goals"]), report["goals"]  # tiny figures prove nothing
    md = (tmp_path / "gpu-check/gpu-check.md").read_text()
    assert "| bucket | ok |" in md and "| goal | measured | target | verdict |" in md
    assert "train / arms.compile: torch.compile takes minutes on a CPU" in md


def test_gpu_check_records_a_failed_step_and_goes_on(tmp_path):
    checkout_view(tmp_path)
    out = run(tmp_path, GPU_CHECK_CPU, "--device", "cuda", "--only", "device", "train", timeout=120)
    assert re.search(r"^\[1/2\] device\s+error .*torch sees no CUDA device", out, re.M), out
    assert re.search(r"^\[2/2\] train\s+error .*torch sees no CUDA device", out, re.M), out
    assert "0 of 2 steps ok (failed: device, train)" in out
    report = json.loads((tmp_path / "gpu-check/gpu-check.json").read_text())
    assert {r["status"] for r in report["steps"].values()} == {"error"}
    assert all(g["verdict"] == "not measured" for g in report["goals"])
    assert "Traceback" in (tmp_path / "gpu-check/logs/train.log").read_text()  # the whole error, for the record
