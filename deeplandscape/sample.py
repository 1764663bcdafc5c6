"""Sampling time-lapse videos from a trained model (paper 3.1, "Sampling videos").

The `sample` command: videos (one process or a Ray Data actor pool), a grid and a manifest
from a trained run. How one video is rendered is in `render.py`: z_st and S_st fixed, z_dyn
interpolated, S_dyn moved by one of the 12 clock directions or a user's own homography,
mirrored below the horizon for water.
"""

from __future__ import annotations

import dataclasses
import io
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from deeplandscape import storage
from deeplandscape.animate.homography import Motion, resolve_direction
from deeplandscape.raykit import actor_device, ensure_ray
from deeplandscape.render import Animation, VideoOutputs, render_to_file, sample_grid
from deeplandscape.runs import LoadedModel, load_model


def write_samples(model: LoadedModel, out_dir: str | Path, videos: int, frames: int, seed: int = 0,
                  direction: str = "random", speed: float = 1.0, horizon: float = 0.5,
                  motions: dict[str, Motion] | None = None, outputs: VideoOutputs = VideoOutputs(),
                  device: str = "cpu", z_dyn_path: str = "slerp") -> dict:
    """`videos` videos `sample-SEED-DIRECTION.mp4` (+ posters), `grid.png` and `manifest.parquet`
    under `out_dir`.

    `direction` is a clock direction ("1h" ... "12h"), a name in `motions`, or "random"
    (one per video, drawn from the video's seed).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths, rows = [], []
    for i in range(videos):
        start = time.perf_counter()
        motion = resolve_direction(direction, np.random.default_rng(seed + i), motions)
        animation = Animation(motion=motion, speed=speed, horizon=horizon, z_dyn_path=z_dyn_path)
        path = out / f"{sample_name(seed + i, motion.name)}.mp4"
        paths.append(render_to_file(model.G, model.resolution, model.alpha, path, seed + i, frames, animation,
                                    outputs, device))
        rows.append({"seed": seed + i, "direction": motion.name, "uri": str(path),
                     "seconds": time.perf_counter() - start, "error": ""})
    write_grid(model, str(out), seed, videos, outputs.scale, device)
    write_manifest(str(out), rows)
    return {"videos": [str(p) for p in paths], "grid": str(out / "grid.png"), "resolution": model.resolution,
            "kimg": model.kimg, "checkpoint": model.checkpoint}


def sample_name(seed: int, direction: str) -> str:
    """A sampled video's file stem, the same in one process and on a Ray Data actor pool."""
    return f"sample-{seed:04d}-{direction}"


def write_grid(model: LoadedModel, out_dir: str, seed: int, videos: int, scale: int, device: str = "cpu") -> str:
    """`grid.png`: the first frames of up to 8 of the videos, six columns of z_dyn each."""
    grid = sample_grid(model.G, [seed + i for i in range(min(videos, 8))], 6, model.resolution, model.alpha,
                       scale, device)
    buf = io.BytesIO()
    grid.save(buf, format="PNG")
    uri = storage.join(out_dir, "grid.png")
    storage.write_bytes(uri, buf.getvalue())
    return uri


def write_manifest(out_dir: str, rows: list[dict]) -> None:
    """`manifest.parquet`: one row per video (seed, direction, uri, seconds, error)."""
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    storage.write_bytes(storage.join(out_dir, "manifest.parquet"), buf.getvalue())


class _VideoRenderer:
    """A Ray Data actor: loads the generator once, renders and uploads the videos it is given."""

    def __init__(self, run_dir: str, out_dir: str, frames: int, direction: str, speed: float, horizon: float,
                 motions: dict[str, list] | None, outputs: dict, use_gpu: bool, z_dyn_path: str = "slerp"):
        device = actor_device(use_gpu)
        self.model = load_model(run_dir, device)
        self.device = device
        self.out_dir, self.frames, self.direction = out_dir, frames, direction
        self.speed, self.horizon, self.z_dyn_path = speed, horizon, z_dyn_path
        self.motions = {k: Motion(k, tuple(map(tuple, v))) for k, v in (motions or {}).items()} or None
        self.outputs = VideoOutputs(**outputs)
        assert not self.outputs.png_frames, "PNG frames are not uploaded from Ray workers"

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows: dict[str, list] = {"seed": [], "direction": [], "uri": [], "seconds": [], "error": []}
        for seed in batch["seed"].tolist():
            start = time.perf_counter()
            motion_name, uri, error = "", "", ""
            try:
                motion = resolve_direction(self.direction, np.random.default_rng(seed), self.motions)
                motion_name = motion.name
                name = sample_name(seed, motion.name)
                with tempfile.TemporaryDirectory() as tmp:
                    local = Path(tmp) / f"{name}.mp4"
                    m = self.model
                    render_to_file(m.G, m.resolution, m.alpha, local, seed, self.frames,
                                   Animation(motion, self.speed, self.horizon, z_dyn_path=self.z_dyn_path), self.outputs,
                                   self.device)
                    for produced in sorted(Path(tmp).iterdir()):
                        storage.write_bytes(storage.join(self.out_dir, produced.name), produced.read_bytes())
                uri = storage.join(self.out_dir, f"{name}.mp4")
            except Exception as e:  # one bad video must not end the job: record it
                error = f"{type(e).__name__}: {e}"
            for k, v in (("seed", seed), ("direction", motion_name), ("uri", uri),
                         ("seconds", time.perf_counter() - start), ("error", error)):
                rows[k].append(v)
        return {k: np.asarray(v) for k, v in rows.items()}


def sample_many(run_dir: str, out_dir: str, videos: int, frames: int, seed: int = 0, direction: str = "random",
                speed: float = 1.0, horizon: float = 0.5, motions: dict[str, Motion] | None = None,
                outputs: VideoOutputs = VideoOutputs(), workers: int = 2, videos_per_batch: int = 4,
                use_gpu: bool = False, z_dyn_path: str = "slerp") -> list[dict]:
    """Render many videos with Ray Data on an actor pool (the generator loaded once per actor).

    `out_dir` may be a folder or an s3:// prefix. Returns one row per video: seed, direction,
    uri, seconds, error ("" when it worked). Writes `manifest.parquet` and `grid.png` next to the
    videos, as `write_samples` does.
    """
    import ray

    ensure_ray()
    ds = ray.data.from_items([{"seed": seed + i} for i in range(videos)])
    ds = ds.map_batches(
        _VideoRenderer,
        fn_constructor_kwargs=dict(
            run_dir=run_dir, out_dir=out_dir, frames=frames, direction=direction, speed=speed, horizon=horizon,
            motions={k: [list(d) for d in m.displacements] for k, m in (motions or {}).items()},
            outputs=dataclasses.asdict(outputs), use_gpu=use_gpu, z_dyn_path=z_dyn_path),
        batch_size=videos_per_batch,
        compute=ray.data.ActorPoolStrategy(size=workers),
        num_gpus=1 if use_gpu else 0,
        num_cpus=1,
    )
    rows = sorted(ds.take_all(), key=lambda r: r["seed"])
    rows = [{k: (v.item() if hasattr(v, "item") else v) for k, v in r.items()} for r in rows]
    write_manifest(out_dir, rows)
    write_grid(load_model(run_dir), out_dir, seed, videos, outputs.scale)
    return rows
