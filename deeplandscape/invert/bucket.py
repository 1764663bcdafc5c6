"""The bucket job: animate every photo under a prefix with Ray Data, streaming and resumable.

    deeplandscape animate-bucket s3://in/photos/ s3://out/videos/ --run-dir s3://models/run1
    ray job submit --working-dir . -- python jobs/animate_bucket.py IN OUT --run-dir RUN ...

The pipeline, one row per input photo:

    driver        list IN (or read a Parquet manifest of URIs), derive each photo's output key,
                  skip the photos whose `OUT/<key>/done.json` exists (finished by an earlier run)
    CPU tasks     read the bytes, decode (`photos.decode_photo`: odd formats, EXIF rotation),
                  frame to the model's square, read the mask next to it  -> a Photo, or a failed row
    actor pool    `PhotoAnimator` loaded once per actor (one GPU each with --gpu): invert
                  `invert.batch` photos together, render (and super-resolve with
                  --superres) + encode each video, upload with retries, write `done.json` LAST
    driver        the manifest, written in Parquet parts as rows arrive, and a summary

Outputs mirror the input layout: `IN/a/b c.jpg` -> `OUT/a/b c/<direction>.mp4` (+ .jpg poster),
`compare.png`, `inversion.json`, `done.json`. A photo counts as finished only when its
`done.json` exists, and that is written after every other output, so a killed run never
leaves a photo looking complete: the next run redoes it (an S3 PUT replaces a whole object).
Failed photos are tried again by every run (fix the file, re-run). Each run writes
`OUT/_runs/<run id>/`: `config.json` (the resolved settings), `manifest/part-*.parquet` (one
row per input: status ok / failed / skipped, reason, output keys, stage timings, PSNR, L1 and
LPIPS of the reconstruction), `summary.json` and `summary.md`.

One bad photo never ends the job: every per-photo error becomes a failed row (Ray Data's
`max_errored_blocks` is 0, so an exception escaping a UDF would). Storage calls are retried
with exponential backoff (`Retry`), so an S3 endpoint that drops for a few seconds is not fatal.
"""

from __future__ import annotations

import dataclasses
import io
import json
import math
import secrets
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from deeplandscape import storage
from deeplandscape.config import InvertConfig
from deeplandscape.data.synth import is_mask_file
from deeplandscape.evaluate.image_metrics import lpips_model
from deeplandscape.invert.animate_photos import Photo, PhotoAnimator, list_photos, pick_directions
from deeplandscape.invert.encoder import encoder_checkpoint
from deeplandscape.invert.inversion import METHODS, resolve_method
from deeplandscape.invert.lighting import lighting_path, load_keyframes
from deeplandscape.invert.masks import horizon_from_sky, sky_from_dynamic
from deeplandscape.storage import Retry, scrub
from deeplandscape.invert.photos import (
    MAX_PIXELS, Framing, PhotoError, decode_mask, decode_photo, frame, mask_uri_for,
)
from deeplandscape.raykit import actor_device, ensure_ray, require_resources
from deeplandscape.render import VideoOutputs, to_uint8
from deeplandscape.runs import lighting_dir, model_settings
from deeplandscape.superres.resolver import output_side
from deeplandscape.train.checkpoint import latest_checkpoint

RUNS_DIR = "_runs"  # OUT/_runs/<run id>/: manifests and summaries; never an output key
DONE = "done.json"
# Bytes a decode task reserves: its worker (torch imported, ~0.4 GB) and the largest photo allowed
# decoded, rotated and converted (3 copies of MAX_PIXELS RGB).
DECODE_MEMORY = 400 * 2**20 + 3 * 3 * MAX_PIXELS
STAGES = ("read_s", "decode_s", "invert_s", "render_s", "upload_s")
MANIFEST_SCHEMA = pa.schema([
    ("input", pa.string()), ("key", pa.string()), ("status", pa.string()), ("reason", pa.string()),
    ("outputs", pa.list_(pa.string())), ("method", pa.string()),
    *[(s, pa.float64()) for s in STAGES],
    ("psnr_db", pa.float64()), ("l1", pa.float64()), ("lpips", pa.float64()), ("run_id", pa.string()),
])


# --- inputs and their output keys -----------------------------------------------------------
def _norm(uri: str) -> str:
    """A prefix in the form listings return: absolute path for local folders, no trailing /."""
    return str(uri).rstrip("/") if storage.is_remote(uri) else storage.resolve(uri)[1].rstrip("/")


def output_key(in_prefix: str, uri: str) -> str:
    """`IN/a/b c.jpg` -> `a/b c`: the input's key relative to IN without its extension.

    Raises PhotoError for a key that could escape OUT (`..`, `.`, empty parts, backslashes,
    control characters) or that would land in OUT/_runs."""
    base = _norm(in_prefix) + "/"
    if not uri.startswith(base):
        raise PhotoError(f"{uri}: not under the input prefix {in_prefix}")
    rel = uri[len(base):]
    parts = rel.split("/")
    if any(p in ("", ".", "..") for p in parts) or "\\" in rel or any(ord(c) < 32 or ord(c) == 127 for c in rel):
        raise PhotoError(f"{uri}: unsafe key {rel!r} (empty, '.' or '..' parts, backslashes or control "
                         "characters could escape the output prefix)")
    name = parts[-1]
    stem = name.rsplit(".", 1)[0] if "." in name.lstrip(".") else name
    key = "/".join(parts[:-1] + [stem])
    if parts[0] == RUNS_DIR or (len(parts) == 1 and stem == RUNS_DIR):
        raise PhotoError(f"{uri}: its output key {key!r} is reserved for the job's manifests ({RUNS_DIR}/)")
    return key


def assign_keys(in_prefix: str, uris: list[str]) -> tuple[list[tuple[str, str]], list[dict]]:
    """([(uri, key)], failed rows). Inputs sharing a key (`a.jpg`, `a.png`) all get their
    extension in it (`a-jpg`, `a-png`), so neither overwrites the other."""
    keyed, failed = [], []
    for uri in uris:
        try:
            keyed.append((uri, output_key(in_prefix, uri)))
        except PhotoError as e:
            failed.append(result_row(uri, "", "failed", str(e)))
    count: dict[str, int] = {}
    for _, key in keyed:
        count[key] = count.get(key, 0) + 1
    taken = set(count)
    out = []
    for uri, key in keyed:
        if count[key] > 1:
            key = f"{key}-{uri.rsplit('.', 1)[-1].lower()}"
            while key in taken:
                key += "_"
            taken.add(key)
        out.append((uri, key))
    return out, failed


def list_inputs(in_prefix: str, out_prefix: str, manifest: str | None, retry: Retry) -> list[str]:
    """Photo URIs: a listing of IN (masks, non-photos and anything under OUT left out), or
    the `uri` column of a Parquet manifest (for millions of files: listing is slow)."""

    if manifest:
        table = pq.read_table(io.BytesIO(retry(storage.read_bytes, manifest, what=f"read {manifest}")))
        if "uri" not in table.column_names:
            raise ValueError(f"input manifest {manifest} has no 'uri' column (columns: {table.column_names})")
        uris = [u for u in table.column("uri").to_pylist() if u]
        uris = [u if storage.is_remote(u) else storage.resolve(u)[1] for u in uris]
    else:
        uris, missing = retry(list_photos, [in_prefix], what=f"list {in_prefix}")
        if missing:
            raise FileNotFoundError(missing[0]["error"])
    out = _norm(out_prefix) + "/"
    return [u for u in dict.fromkeys(uris) if not u.startswith(out) and not is_mask_file(u)]


def finished_keys(out_prefix: str, retry: Retry) -> set[str]:
    """Keys whose `OUT/<key>/done.json` exists (one listing of OUT)."""
    try:
        markers = retry(storage.list_files, out_prefix, (f"/{DONE}",), what=f"list {out_prefix}")
    except FileNotFoundError:
        return set()
    base = _norm(out_prefix) + "/"
    return {m[len(base):-len(f"/{DONE}")] for m in markers if m.startswith(base)}


# --- rows -----------------------------------------------------------------------------------
def result_row(uri: str, key: str, status: str, reason: str = "", **values) -> dict:
    """One manifest row; stages and quality not measured are NaN."""
    row = {"input": uri, "key": key, "status": status, "reason": scrub(reason), "outputs": [], "method": "",
           **{s: math.nan for s in STAGES}, "psnr_db": math.nan, "l1": math.nan, "lpips": math.nan, "run_id": ""}
    row.update(values)
    return row


def _error(e: BaseException) -> str:
    return scrub(str(e) if isinstance(e, PhotoError) else f"{type(e).__name__}: {e}")


# --- stage 1: read and decode (CPU tasks) ---------------------------------------------------
def frame_photo(uri: str, img: np.ndarray, mask: np.ndarray | None, resolution: int, fit: str,
                horizon: float | None, margin: float, hires_size: int = 0) -> dict:
    """The model-free half of `PhotoAnimator.read` as columns: the square the model sees, where
    the photo is in it, the dynamic mask from the file next to it, the horizon and (with
    `hires_size`) the square for super-resolution. Segmentation (a model) is left to the actor."""
    framed = frame(uri, img, mask, resolution, fit, hires_size)
    dynamic = np.zeros((resolution, resolution), np.uint8)
    source, sky = "none", None
    if framed.dynamic is not None:
        dynamic, sky, source = framed.dynamic.astype(np.uint8), sky_from_dynamic(framed.dynamic), "file"
    if horizon is None:
        horizon = horizon_from_sky(sky, margin) if sky is not None else 0.5
    f = framed.framing
    out = {"square": framed.square, "dynamic": dynamic, "mask_source": source, "horizon": float(horizon),
           "framing": np.array([f.top, f.left, f.height, f.width], np.float64)}
    if hires_size:
        out["hires"] = framed.hires
        out["hires_dynamic"] = (framed.hires_dynamic if framed.hires_dynamic is not None
                                else np.zeros((hires_size, hires_size), bool)).astype(np.uint8)
    return out


def read_and_decode(row: dict, resolution: int, fit: str, horizon: float | None, margin: float,
                    retry: dict, hires_size: int = 0) -> dict:
    """Ray Data `map`: {input, key} -> the framed photo, or a failed row (never raises)."""
    uri, key, again = row["input"], row["key"], Retry(**retry)
    out = {"input": uri, "key": key, "status": "todo", "reason": "", "read_s": math.nan, "decode_s": math.nan,
           "square": np.zeros((resolution, resolution, 3), np.uint8),
           "dynamic": np.zeros((resolution, resolution), np.uint8), "mask_source": "none", "horizon": 0.5,
           "framing": np.array([0.0, 0.0, 1.0, 1.0])}
    if hires_size:  # every row has every column, with one shape
        out["hires"] = np.zeros((hires_size, hires_size, 3), np.uint8)
        out["hires_dynamic"] = np.zeros((hires_size, hires_size), np.uint8)
    try:
        start = time.perf_counter()
        data = again(storage.read_bytes, uri, what=f"read {uri}")
        mask_uri = mask_uri_for(uri)
        mask_data = again(lambda u: storage.read_bytes(u) if storage.exists(u) else None, mask_uri,
                          what=f"read {mask_uri}")
        out["read_s"], start = time.perf_counter() - start, time.perf_counter()
        img = decode_photo(data, uri, min_side=resolution)  # [H, W, 3] uint8, upright
        mask = decode_mask(mask_data, mask_uri) if mask_data is not None else None
        out.update(frame_photo(uri, img, mask, resolution, fit, horizon, margin, hires_size))
        out["decode_s"] = time.perf_counter() - start
    except FileNotFoundError:
        out.update(status="failed", reason=f"{uri}: no longer exists (deleted after the listing)")
    except Exception as e:  # noqa: BLE001 - any per-photo error is a row, never the job's end
        out.update(status="failed", reason=_error(e))
    return out


# --- stage 2: invert, render, upload (actor pool) -------------------------------------------
def psnr_l1(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(PSNR in dB, mean |a - b| in the generator's [-1, 1] units) of uint8 images."""
    diff = a.astype(np.float64) - b.astype(np.float64)
    mse = float(np.mean(diff**2))
    return (math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)), float(np.mean(np.abs(diff)) / 127.5)


class BucketAnimator:
    """A Ray Data actor: `PhotoAnimator` built once, then batches of framed photos -> videos in OUT."""

    def __init__(self, run_dir: str, icfg: dict, out_prefix: str, homographies: int, directions: list[str] | None,
                 frames: int, speed: float, horizon: float | None, outputs: dict, retry: dict, run_id: str,
                 use_gpu: bool, lighting: str = "none", keyframes: str | None = None, superres: bool = False):
        device = actor_device(use_gpu)
        self.animator = PhotoAnimator(run_dir, InvertConfig(**icfg), device, horizon, log=lambda _msg: None,
                                      lighting=lighting, keyframes=keyframes, superres=superres)
        self.out_prefix, self.homographies, self.directions = out_prefix, homographies, directions
        self.frames, self.speed, self.horizon = frames, speed, horizon
        self.outputs, self.retry, self.run_id = VideoOutputs(**outputs), Retry(**retry), run_id
        self.lpips = _optional_lpips(self.animator.cfg.perceptual_net, device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = len(batch["input"])
        rows = [result_row(str(batch["input"][i]), str(batch["key"][i]), str(batch["status"][i]),
                           str(batch["reason"][i]), read_s=float(batch["read_s"][i]),
                           decode_s=float(batch["decode_s"][i]), run_id=self.run_id) for i in range(n)]
        todo = [i for i in range(n) if rows[i]["status"] == "todo"]
        photos = {}
        for i in todo:
            try:
                photos[i] = self._photo(batch, i)
            except Exception as e:  # noqa: BLE001
                rows[i].update(status="failed", reason=_error(e))
        if photos:
            self._animate(photos, rows)
        return _columns(rows)

    def _photo(self, batch: dict[str, np.ndarray], i: int):

        square, source = batch["square"][i], str(batch["mask_source"][i])
        dynamic = batch["dynamic"][i].astype(bool) if source == "file" else None
        horizon = float(batch["horizon"][i])
        seg = self.animator.segmenter
        if dynamic is None and seg is not None:
            dynamic, sky = seg(square)
            source = "segmentation"
            horizon = self.horizon if self.horizon is not None else horizon_from_sky(sky, self.animator.cfg.horizon_margin)
        top, left, height, width = batch["framing"][i].tolist()
        hires = batch["hires"][i] if "hires" in batch else None
        hires_dynamic = batch["hires_dynamic"][i].astype(bool) if hires is not None and source == "file" else None
        return Photo(str(batch["input"][i]), str(batch["key"][i]), square, Framing(top, left, height, width),
                     dynamic, horizon, source, hires, hires_dynamic)

    def _animate(self, photos: dict, rows: list[dict]) -> None:
        """Invert the batch together, then finish each photo on its own (errors stay per photo)."""
        start = time.perf_counter()
        try:
            inv = self.animator.invert(list(photos.values()))
        except Exception as e:  # noqa: BLE001 - e.g. out of memory: the batch fails, the job goes on
            for i in photos:
                rows[i].update(status="failed", reason=f"inversion of its batch failed: {_error(e)}")
            return
        per_photo = (time.perf_counter() - start) / len(photos)
        for k, (i, photo) in enumerate(photos.items()):
            rows[i].update(invert_s=per_photo, method=inv.method)
            try:
                rows[i].update(self._finish(photo, inv.photo(k)), status="ok")
            except Exception as e:  # noqa: BLE001
                rows[i].update(status="failed", reason=_error(e))

    def _finish(self, photo, inv) -> dict:
        """Render and encode into a temporary folder, upload each file, then done.json last."""

        out_dir = storage.join(self.out_prefix, photo.name)
        directions = pick_directions(photo.name, self.homographies, self.directions)
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            result = self.animator.write(photo, inv, tmp, directions, self.frames, self.speed, self.outputs)
            recon = photo.framing.crop(to_uint8(self.animator.inverter.reconstruct(inv))[0])  # [h, w, 3]
            given = photo.framing.crop(photo.square)
            psnr, l1 = psnr_l1(given, recon)
            lpips = self._lpips(given, recon)
            render_s, start = time.perf_counter() - start, time.perf_counter()
            keys = []
            for local in result["outputs"]:
                key = storage.join(out_dir, Path(local).name)
                self.retry(storage.write_bytes, key, Path(local).read_bytes(), what=f"upload {key}")
                keys.append(key)
        done = {"input": photo.uri, "key": photo.name, "run_id": self.run_id, "method": inv.method,
                "directions": directions, "frames": self.frames, "lighting": self.animator.lighting,
                "superres": result["superres"],
                "outputs": keys, "psnr_db": psnr, "l1": l1,
                "lpips": lpips, "finished_at": _now_iso()}
        done_key = storage.join(out_dir, DONE)
        self.retry(storage.write_text, done_key, json.dumps(done, indent=2), what=f"upload {done_key}")
        return {"outputs": keys + [done_key], "psnr_db": psnr, "l1": l1, "lpips": lpips, "render_s": render_s,
                "upload_s": time.perf_counter() - start}

    def _lpips(self, a: np.ndarray, b: np.ndarray) -> float:
        if self.lpips is None:
            return math.nan
        return float(self.lpips.per_image(a[None], b[None], np.ones(a.shape[:2], bool))[0])


def _optional_lpips(net: str, device: str):
    """LPIPS when its backbone file is in the weight cache, else None (the job never needs it)."""
    try:

        return lpips_model(net, device)
    except (ImportError, FileNotFoundError):  # MissingWeightsError is a FileNotFoundError
        return None


def _columns(rows: list[dict]) -> dict[str, np.ndarray]:
    """Rows -> numpy columns for Ray Data; the output keys travel as JSON text."""
    cols = {k: [r[k] for r in rows] for k in rows[0] if k != "outputs"}
    cols["outputs"] = [json.dumps(r["outputs"]) for r in rows]
    return {k: np.asarray(v, dtype=object if isinstance(v[0], str) else None) for k, v in cols.items()}


# --- the job --------------------------------------------------------------------------------
@dataclass
class BucketJob:
    """Everything a bucket run needs; saved as OUT/_runs/<run id>/config.json."""

    in_prefix: str  # folder or s3:// prefix holding the photos (X.mask.png next to X: its mask)
    out_prefix: str  # OUT/<key>/<direction>.mp4 ...; OUT/_runs/<run id>/ manifests
    run_dir: str  # trained run with RUN/encoder
    manifest: str | None = None  # Parquet file with a `uri` column instead of listing IN
    homographies: int = 5  # videos per photo, each a different clock direction
    directions: list[str] | None = None  # explicit clock directions instead
    frames: int = 100
    speed: float = 2.5
    horizon: float | None = None  # fraction from the top; default: from the mask
    lighting: str = "none"  # none | random | day-to-night | cycle | keyframe names (RUN/lighting, train-lighting)
    keyframes: str | None = None  # a JSON file of {name: [z_dyn]} instead of RUN/lighting/keyframes.json
    superres: bool = False  # x4 super-resolution + guided-filter blend (RUN/superres, train-superres)
    outputs: dict = field(default_factory=dict)  # VideoOutputs fields (fps, crf, scale, poster)
    workers: int = 1  # actors in the pool (one GPU each with gpu)
    gpu: bool = False
    cpus_per_worker: float = 1.0
    retry: dict = field(default_factory=lambda: dataclasses.asdict(Retry()))
    flush_rows: int = 500  # manifest rows per Parquet part


def check_lighting(run_dir: str, lighting: str, keyframes: str | None) -> None:
    """The lighting network and keyframes exist and `lighting` names a path through them."""

    if latest_checkpoint(lighting_dir(run_dir)) is None:
        raise FileNotFoundError(f"no lighting network under {lighting_dir(run_dir)}/checkpoints: train one with "
                                f"`deeplandscape train-lighting --run-dir {run_dir}`")
    frames = load_keyframes(keyframes or storage.join(lighting_dir(run_dir), "keyframes.json"))
    z_dyn = len(next(iter(frames.values()))["z_dyn"]) if frames else 0
    lighting_path(lighting, frames, z_dyn, 0, 0, "cpu")  # unknown names fail here


def check_models(job: BucketJob, icfg: InvertConfig) -> None:
    """Every network the actors will load is in the run: a missing one fails here, on the
    driver, in one line, not in every actor as a Ray traceback."""
    if METHODS[resolve_method(icfg.method, True)].init_w == "encoder":
        encoder_checkpoint(job.run_dir)
    if job.lighting != "none":
        check_lighting(job.run_dir, job.lighting, job.keyframes)
    if job.superres:
        output_side(job.run_dir, 1)


def animate_bucket(job: BucketJob, icfg: InvertConfig, log=print) -> dict:
    """Run the job; returns the summary (also written to OUT/_runs/<run id>/)."""
    for what, uri in (("input prefix", job.in_prefix), ("output prefix", job.out_prefix),
                      ("run directory", job.run_dir), ("manifest", job.manifest or "")):
        storage.check_no_credentials(uri, what)
    local = lambda uri: uri if not uri or storage.is_remote(uri) else storage.resolve(uri)[1]  # noqa: E731
    job = dataclasses.replace(job, in_prefix=local(job.in_prefix), out_prefix=local(job.out_prefix),
                              run_dir=local(job.run_dir), manifest=job.manifest and local(job.manifest),
                              keyframes=job.keyframes and local(job.keyframes))
    check_models(job, icfg)
    # Before Ray starts and anything is written: a job that cannot fit says so at once.
    require_resources(job.workers * job.cpus_per_worker + 1, job.workers if job.gpu else 0,
                      f"animate-bucket ({job.workers} actor(s) x {job.cpus_per_worker:g} CPU"
                      f"{', 1 GPU each' if job.gpu else ''}, + 1 CPU for decoding)",
                      "use fewer --workers or a smaller --cpus-per-worker", log)
    ensure_ray(log)
    retry = Retry(**job.retry)
    started, t0 = _now_iso(), time.perf_counter()
    run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)
    run_uri = storage.join(job.out_prefix, RUNS_DIR, run_id)

    uris = list_inputs(job.in_prefix, job.out_prefix, job.manifest, retry)
    keyed, failed = assign_keys(job.in_prefix, uris)
    done = finished_keys(job.out_prefix, retry)
    todo = [(u, k) for u, k in keyed if k not in done]
    skipped = [result_row(u, k, "skipped", "finished by an earlier run", run_id=run_id,
                          outputs=[storage.join(job.out_prefix, k, DONE)]) for u, k in keyed if k in done]
    log(f"animate-bucket {run_id}: {len(uris)} input(s) in {job.in_prefix}: {len(todo)} to animate, "
        f"{len(skipped)} finished earlier, {len(failed)} unusable key(s)")
    retry(storage.write_text, storage.join(run_uri, "config.json"),
          json.dumps({"job": dataclasses.asdict(job), "invert": dataclasses.asdict(icfg), "run_id": run_id}, indent=2),
          what="write config.json")

    manifest = ManifestWriter(storage.join(run_uri, "manifest"), MANIFEST_SCHEMA, job.flush_rows, retry)
    manifest.add([{**r, "run_id": run_id} for r in failed] + skipped)
    t_pipeline = time.perf_counter()
    if todo:
        _, resolution = model_settings(job.run_dir)  # the square the CPU stage frames photos to
        hires_size = 0
        if job.superres:

            hires_size = output_side(job.run_dir, resolution)
        for batch in _pipeline(job, icfg, resolution, hires_size, todo, run_id).iter_batches(batch_size=None,
                                                                                 batch_format="numpy"):
            manifest.add(_rows(batch))
    pipeline_s = time.perf_counter() - t_pipeline
    manifest.close()
    summary = summarize(manifest.counts, manifest.stage_sums, manifest.failures, run_id, run_uri, started,
                        time.perf_counter() - t0, pipeline_s, job)
    retry(storage.write_text, storage.join(run_uri, "summary.json"), json.dumps(summary, indent=2),
          what="write summary.json")
    retry(storage.write_text, storage.join(run_uri, "summary.md"), summary_markdown(summary), what="write summary.md")
    log(summary_markdown(summary))
    return summary


def _pipeline(job: BucketJob, icfg: InvertConfig, resolution: int, hires_size: int, todo: list[tuple[str, str]],
              run_id: str):
    """The Ray Data plan: rows {input, key} -> CPU decode tasks -> the animating actor pool."""
    import ray

    rows_per_block = max(icfg.batch, math.ceil(len(todo) / 10_000))
    ds = ray.data.from_items([{"input": u, "key": k} for u, k in todo],
                             override_num_blocks=max(1, math.ceil(len(todo) / rows_per_block)))
    # Decoding runs in plain CPU tasks. Their memory reservation bounds how many big photos are
    # decoded at once on a node, and (the remote args differing) keeps Ray Data from fusing the
    # decode into the animating actors, whose time belongs to the GPU.
    ds = ds.map(read_and_decode, fn_kwargs=dict(resolution=resolution, fit=icfg.fit, horizon=job.horizon,
                                                margin=icfg.horizon_margin, retry=job.retry,
                                                hires_size=hires_size),
                num_cpus=1, memory=DECODE_MEMORY)
    return ds.map_batches(
        BucketAnimator,
        fn_constructor_kwargs=dict(run_dir=job.run_dir, icfg=dataclasses.asdict(icfg), out_prefix=job.out_prefix,
                                   homographies=job.homographies, directions=job.directions, frames=job.frames,
                                   speed=job.speed, horizon=job.horizon, outputs=job.outputs, retry=job.retry,
                                   run_id=run_id, use_gpu=job.gpu, lighting=job.lighting, keyframes=job.keyframes,
                                   superres=job.superres),
        batch_size=icfg.batch,  # photos inverted together (an integer: a GPU stage needs one)
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=job.workers),
        num_gpus=1 if job.gpu else 0,
        num_cpus=job.cpus_per_worker,
    )


def _rows(batch: dict[str, np.ndarray]) -> list[dict]:
    """A Ray Data batch of the actors' output -> manifest rows."""
    n = len(batch["input"])
    rows = []
    for i in range(n):
        row = {k: (v[i].item() if hasattr(v[i], "item") else v[i]) for k, v in batch.items()}
        row["outputs"] = json.loads(row["outputs"])
        rows.append({k: row.get(k) for k in MANIFEST_SCHEMA.names})
    return rows


class ManifestWriter:
    """Manifest rows -> Parquet parts under `uri`, written as they arrive (a killed run keeps
    what it flushed); counts, stage sums and failures kept for the summary."""

    def __init__(self, uri: str, schema: pa.Schema, flush_rows: int, retry: Retry):
        self.uri, self.schema, self.flush_rows, self.retry = uri, schema, flush_rows, retry
        self.pending: list[dict] = []
        self.parts = 0
        self.counts = {"ok": 0, "failed": 0, "skipped": 0}
        self.stage_sums: dict[str, list[float]] = {k: [] for k in (*STAGES, "psnr_db", "l1", "lpips")}
        self.failures: list[dict] = []

    def add(self, rows: Iterable[dict]) -> None:
        for row in rows:
            self.counts[row["status"]] = self.counts.get(row["status"], 0) + 1
            if row["status"] == "ok":
                for k, values in self.stage_sums.items():
                    if row[k] is not None and math.isfinite(row[k]):
                        values.append(row[k])
            elif row["status"] == "failed":
                self.failures.append({"input": row["input"], "reason": row["reason"]})
                print(f"failed: {row['reason']}", file=sys.stderr, flush=True)
            self.pending.append(row)
        if len(self.pending) >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        buf = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(self.pending, schema=self.schema), buf)
        part = storage.join(self.uri, f"part-{self.parts:05d}.parquet")
        self.retry(storage.write_bytes, part, buf.getvalue(), what=f"write {part}")
        self.parts += 1
        self.pending = []

    def close(self) -> None:
        self.flush()


def read_manifest(run_uri: str) -> pa.Table:
    """All rows of one run's manifest (OUT/_runs/<run id>)."""
    parts = storage.list_files(storage.join(run_uri, "manifest"), (".parquet",))
    return pa.concat_tables([pq.read_table(io.BytesIO(storage.read_bytes(p))) for p in parts])


def summarize(counts: dict, stage_sums: dict, failures: list[dict], run_id: str, run_uri: str, started: str,
              wall_s: float, pipeline_s: float, job: BucketJob) -> dict:
    mean = lambda v: round(float(np.mean(v)), 4) if v else None  # noqa: E731
    return {
        "run_id": run_id, "started_at": started, "finished_at": _now_iso(),
        "inputs": sum(counts.values()), **counts,
        "wall_s": round(wall_s, 2), "pipeline_s": round(pipeline_s, 2),
        "photos_per_hour": round(counts["ok"] / pipeline_s * 3600, 1) if counts["ok"] and pipeline_s > 0 else 0.0,
        "mean_stage_s": {k: mean(stage_sums[k]) for k in STAGES},
        "mean_quality": {k: mean(stage_sums[k]) for k in ("psnr_db", "l1", "lpips")},
        "failures": failures[:100], "failures_listed": min(len(failures), 100),
        "manifest": storage.join(run_uri, "manifest"), "in_prefix": job.in_prefix, "out_prefix": job.out_prefix,
        "workers": job.workers, "gpu": job.gpu,
    }


def summary_markdown(s: dict) -> str:
    stages = ", ".join(f"{k[:-2]} {v:.2f}" for k, v in s["mean_stage_s"].items() if v is not None)
    quality = ", ".join(f"{k} {v:.3f}" for k, v in s["mean_quality"].items() if v is not None)
    lines = [f"# animate-bucket run {s['run_id']}", "",
             f"- inputs: {s['inputs']} under {s['in_prefix']}: **{s['ok']} animated**, {s['failed']} failed, "
             f"{s['skipped']} skipped (finished earlier)",
             f"- time: {s['wall_s']:.1f} s in all, {s['pipeline_s']:.1f} s in the pipeline; "
             f"{s['photos_per_hour']:.0f} photos/hour on {s['workers']} {'GPU' if s['gpu'] else 'CPU'} actor(s)",
             f"- mean seconds per photo: {stages or 'n/a'}",
             f"- reconstruction (mean): {quality or 'n/a'}",
             f"- manifest: {s['manifest']} (Parquet: one row per input); outputs under {s['out_prefix']}"]
    if s["failures"]:
        lines += ["", "## Failed", ""] + [f"- {f['reason']}" for f in s["failures"]]
    return "\n".join(lines) + "\n"


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
