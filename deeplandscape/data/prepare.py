"""`deeplandscape prepare`: raw photos and time-lapses -> training shards, with Ray Data.

Like the authors' per-resolution LMDBs, but Parquet on a folder or an `s3://` prefix, so a
data set larger than one machine's memory can be streamed to many workers
(`deeplandscape.data.stream`). Layout of OUT:

    OUT/manifest.json       what was prepared: resolutions, format, counts, and every skipped
                            source file with the reason
    OUT/photos/*.parquet    one row per photo:
                              photo_id int64, source string, error string,
                              r8, r16, ..., rL binary (one encoded image per resolution)
    OUT/clips/*.parquet     one row per clip (up to `clip_frames` frames of ONE video, taken
                            with a stride so a clip spans the whole video):
                              video_id int64, clip int64, source string, error string,
                              frame_index list<int64>, r8 ... rL list<binary>

Each resolution is its own column, so a reader at 32 px reads only the `r32` column chunks
(Parquet projection), which is what a per-resolution LMDB gave the authors. Keeping the frames
of one video together in a row is what lets the stream form real pairs (two frames of one
video, for D_pair) and crop pairs without a shuffle across the data set.

The top resolution is the centre square resized as `TrainingData.load` does (`square_resize`);
each lower one is an exact box filter of it (what `resize_to` computes in memory), rounded
to uint8. Ids are a hash of the source URI: stable across runs and machines.

A source file that cannot be used (zero bytes, truncated, not an image, no decodable video,
fewer than two frames) becomes one row with `error` set and no images: one bad file never
aborts the job (Ray Data stops at the first exception by default), and the manifest lists it.
Readers skip rows whose `error` is not empty. The per-file work is in `transforms.py`.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable

import pyarrow.fs as pafs

from deeplandscape import storage
from deeplandscape.data.synth import is_mask_file
from deeplandscape.data.training import PHOTO_SUFFIXES, VIDEO_SUFFIXES
from deeplandscape.data.transforms import FORMATS, photos_batch, videos_batch
from deeplandscape.raykit import ensure_ray

SHARDS_KIND = "deeplandscape-shards"
MANIFEST = "manifest.json"


def check_resolutions(resolutions: list[int]) -> list[int]:
    out = sorted(set(int(r) for r in resolutions))
    if not out or any(r < 4 or r & (r - 1) for r in out):
        raise ValueError(f"resolutions must be powers of two >= 4, got {resolutions}")
    return out


def resolutions_for(start_resolution: int, load_resolution: int) -> list[int]:
    """Every power of two a training run reads: its first phase up to its load resolution."""
    return check_resolutions([start_resolution << k for k in range((load_resolution // start_resolution).bit_length())])


# --- the job --------------------------------------------------------------------------------
def list_sources(images: str, videos: str) -> tuple[list[str], list[str]]:
    """Photo and video URIs under the two locations (masks skipped). Either may be empty."""
    photos = [u for u in storage.list_files(images, PHOTO_SUFFIXES) if not is_mask_file(u)] if images else []
    clips = storage.list_files(videos, VIDEO_SUFFIXES) if videos else []
    if not photos and not clips:
        raise FileNotFoundError(f"no photos ({', '.join(PHOTO_SUFFIXES)}) under {images or '(none given)'} and no "
                                f"videos ({', '.join(VIDEO_SUFFIXES)}) under {videos or '(none given)'}")
    return photos, clips


def task_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path) to hand to Ray Data tasks, resolved here on the driver.

    Ray workers need not share the driver's environment (a Ray started before it was set, or
    nodes elsewhere), so for S3 the endpoint (AWS_ENDPOINT_URL) travels inside the filesystem
    object, and so do static credentials when the driver's environment holds them
    (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN): Ray's documented way of
    giving Ray Data credentials. Without them workers use their own chain (an instance profile).
    """
    fs, path = storage.resolve(uri)
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if isinstance(fs, pafs.S3FileSystem) and key and secret:
        fs = pafs.S3FileSystem(access_key=key, secret_key=secret, session_token=os.environ.get("AWS_SESSION_TOKEN"),
                               region=fs.region or os.environ.get("AWS_DEFAULT_REGION") or None,
                               endpoint_override=os.environ.get("AWS_ENDPOINT_URL") or None)
    return fs, path


def _paths(uris: list[str]) -> tuple[Any, list[str], str]:
    """(filesystem for Ray tasks, paths inside it, scheme prefix) for URIs on one filesystem."""
    fs, _ = task_filesystem(uris[0])
    if storage.is_remote(uris[0]):
        scheme = uris[0].split("://", 1)[0] + "://"
        return fs, [u[len(scheme):] for u in uris], scheme
    return fs, [storage.resolve(u)[1] for u in uris], ""


def _write(ds, out_uri: str, rows_per_file: int) -> None:
    fs, path = task_filesystem(out_uri)
    ds.write_parquet(path, filesystem=fs, min_rows_per_file=rows_per_file, mode="overwrite")


def _read_back(uri: str, columns: list[str]):
    import pyarrow.parquet as pq

    fs, path = storage.resolve(uri)
    return pq.read_table(path, filesystem=fs, columns=columns)


def prepare(images: str, videos: str, out: str, resolutions: list[int], fmt: str = "png", quality: int = 95,
            clip_frames: int = 16, photos_per_file: int = 512, clips_per_file: int = 64,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """Write training shards for every photo under `images` and video under `videos` to `out`.

    Returns the manifest (also written to OUT/manifest.json). Bad files are skipped and listed
    in `manifest["skipped"]` with the reason; the job fails only when nothing usable is left.
    """
    import ray
    import ray.data

    resolutions = check_resolutions(resolutions)
    if fmt not in FORMATS:
        raise ValueError(f"--format must be one of {FORMATS}, got {fmt!r}")
    if clip_frames < 2:
        raise ValueError(f"clip_frames must be >= 2 (a clip gives real pairs), got {clip_frames}")
    if storage.exists(storage.join(out, MANIFEST)):
        raise ValueError(f"{out} already holds prepared shards ({MANIFEST}); choose a new --out or delete it")
    photo_uris, video_uris = list_sources(images, videos)
    log(f"preparing {len(photo_uris)} photos and {len(video_uris)} videos at {resolutions} px ({fmt}) into {out}")
    start = time.perf_counter()
    ensure_ray(log)
    if photo_uris:
        fs, paths, scheme = _paths(photo_uris)
        ds = ray.data.read_binary_files(paths, filesystem=fs, include_paths=True)
        ds = ds.map_batches(photos_batch, batch_size=16, batch_format="pyarrow",
                            fn_kwargs=dict(scheme=scheme, resolutions=resolutions, fmt=fmt, quality=quality))
        _write(ds, storage.join(out, "photos"), photos_per_file)
    if video_uris:
        fs, paths, scheme = _paths(video_uris)
        # One video per task: decoding a video is the unit of work.
        ds = ray.data.read_binary_files(paths, filesystem=fs, include_paths=True, override_num_blocks=len(paths))
        ds = ds.map_batches(videos_batch, batch_size=1, batch_format="pyarrow",
                            fn_kwargs=dict(scheme=scheme, resolutions=resolutions, fmt=fmt, quality=quality,
                                           clip_frames=clip_frames))
        _write(ds, storage.join(out, "clips"), clips_per_file)
    manifest = _manifest(out, images, videos, resolutions, fmt, quality, clip_frames, bool(photo_uris),
                         bool(video_uris), time.perf_counter() - start)
    storage.write_text(storage.join(out, MANIFEST), json.dumps(manifest, indent=1))
    return manifest


def _manifest(out: str, images: str, videos: str, resolutions: list[int], fmt: str, quality: int, clip_frames: int,
              has_photos: bool, has_videos: bool, seconds: float) -> dict[str, Any]:
    """Counts and skipped files, read back from the shards' small columns."""
    skipped: list[dict[str, str]] = []
    photos = {"source": images, "files": 0, "prepared": 0}
    if has_photos:
        t = _read_back(storage.join(out, "photos"), ["source", "error"]).to_pylist()
        photos.update(files=len(t), prepared=sum(not r["error"] for r in t))
        skipped += [{"kind": "photo", "source": r["source"], "reason": r["error"]} for r in t if r["error"]]
    clips = {"source": videos, "files": 0, "prepared": 0, "clips": 0, "frames": 0}
    if has_videos:
        t = _read_back(storage.join(out, "clips"), ["video_id", "source", "error", "frame_index"]).to_pylist()
        good = [r for r in t if not r["error"]]
        clips.update(files=len({r["video_id"] for r in t}), prepared=len({r["video_id"] for r in good}),
                     clips=len(good), frames=sum(len(r["frame_index"]) for r in good))
        skipped += [{"kind": "video", "source": r["source"], "reason": r["error"]} for r in t if r["error"]]
    if photos["prepared"] + clips["prepared"] == 0:
        raise ValueError(f"no usable photo or video among the sources; every file was skipped: "
                         f"{[s['source'] + ': ' + s['reason'] for s in skipped][:5]}")
    return {
        "kind": SHARDS_KIND, "version": 1, "format": fmt, "quality": quality if fmt == "jpeg" else None,
        "resolutions": resolutions, "clip_frames": clip_frames,
        "photos": photos, "videos": clips,
        "skipped": sorted(skipped, key=lambda s: s["source"]),
        "seconds": round(seconds, 1),
    }


def load_manifest(uri: str) -> dict[str, Any] | None:
    """The manifest of prepared shards at `uri`, or None when `uri` holds raw files."""
    path = storage.join(uri, MANIFEST)
    if not uri or not storage.exists(path):
        return None
    manifest = json.loads(storage.read_text(path))
    if manifest.get("kind") != SHARDS_KIND:
        raise ValueError(f"{path} is not a deeplandscape shards manifest (kind {manifest.get('kind')!r})")
    return manifest
