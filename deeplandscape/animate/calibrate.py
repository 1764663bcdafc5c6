"""Measure how clouds move in a time-lapse collection and turn it into homography motions.

The paper picked the homography speed by hand "to match the average speed of clouds in our
dataset" (section 4). Here the speed is measured: dense optical flow (OpenCV Farneback)
between consecutive frames of every video, kept on the sky pixels that change, reduced to one
robust per-frame drift (dx, dy) per video, in parallel over the collection with Ray Data.
The result is the 12 clock directions rescaled to the median measured speed plus the most
frequent measured directions, saved with `homography.save_motions`.

Units follow `homography`: normalised image coordinates in [-1, 1], x right, y DOWN, so a
drift of dx pixels per frame in a W-pixel-wide video is 2 * dx / W normalised units per
frame (dy uses the height). Angles are clock angles in degrees, as in `clock_motion`:
0 = right ("3h"), 90 = up ("12h"), counter-clockwise.

Why only the sky: water mirrors the sky, so below the horizon the vertical motion is flipped
(paper 3.1); mixing both would cancel dy. With a mask (255 = sky + water, the data set's
`NAME.mask.png`) the sky is the part of the mask connected to the top of the frame, cut at
the typical skyline row; without one, the top third of the frame.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import cv2
import numpy as np
from PIL import Image

from deeplandscape import storage
from deeplandscape.animate.homography import HORIZON_PARALLAX, Motion, clock_motion, save_motions
from deeplandscape.data.synth import MASK_SUFFIX, is_mask_file, mask_path_for
from deeplandscape.raykit import ensure_ray
from deeplandscape.video import VideoError, iter_frames

__all__ = [
    "VIDEO_SUFFIXES",
    "VideoMotion",
    "sky_region",
    "measure_motion",
    "measure_video",
    "mask_uri_for",
    "calibrate",
    "motions_from_measurements",
    "list_videos",
    "report_path_for",
    "run_calibration",
]

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")

# Farneback on the grey levels normalised to mean 128 and this std: the flow's internal
# regularisation is tuned for 8-bit contrast, and unit-variance floats give near-zero flow.
_GREY_STD = 40.0
# (pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags). A small window: the
# sky is often a thin band, and a window that reaches the still ridge drags the flow to 0
# (winsize 15, OpenCV's usual value, cut the accuracy on 64 px synthetic skies in half).
_FARNEBACK = (0.5, 3, 9, 3, 5, 1.1, 0)
# Working pixels dropped along the sky's edge with the static scene, for the same reason.
_EDGE_MARGIN = 3
# Only pixels whose grey level changes by at least this fraction of the sky's 90th-percentile
# change vote (see `_moving`); 0.25 let enough still sky in to bias the median towards 0.
_MOVING_FRACTION = 0.65
# A frame pair votes only with this many moving sky pixels (fewer: a flat or black frame).
_MIN_PIXELS = 16
# Below this speed (normalised units per frame) a video has no direction to count.
_STILL_SPEED = 1e-4


@dataclass
class VideoMotion:
    """The measured cloud drift of one video; `error` says why a video has none.

    Floats are None on an error row, so a failed video never pollutes a median.
    """

    uri: str
    mask_uri: str | None = None
    width: int = 0
    height: int = 0
    frames: int = 0  # frames decoded
    pairs: int = 0  # frame pairs that voted (enough moving sky)
    dx_px: float | None = None  # median drift, pixels per frame at the video's size
    dy_px: float | None = None
    dx: float | None = None  # the same, normalised units per frame (2 * px / size)
    dy: float | None = None
    speed: float | None = None  # hypot(dx, dy), normalised units per frame
    angle_deg: float | None = None  # clock angle: 0 right, 90 up, counter-clockwise
    frames_used: float = 0.0  # fraction of frame pairs that voted
    pixels_used: float = 0.0  # mean fraction of a frame's pixels that voted, over voting pairs
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.speed is not None

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> VideoMotion:
        """Back from `asdict` (a report row); unknown keys are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in names})


# ---------------------------------------------------------------------------
# flow on frames


def sky_region(mask: np.ndarray) -> np.ndarray:
    """The sky part [H, W] bool of a dynamic mask [H, W] bool (sky + water).

    A pixel is sky when every mask pixel above it in its column is dynamic too (it hangs
    from the top of the frame), and it lies above the median skyline: in a column where no
    mountain separates the sky from the water the run would go on into the mirrored
    reflection, and the median over columns stops it at the typical ridge/horizon row.
    """
    assert mask.ndim == 2, f"mask must be [H, W], got {mask.shape}"
    run = np.cumprod(mask.astype(bool), axis=0).astype(bool)  # [H, W] connected to the top row
    depth = run.sum(axis=0)  # [W] rows of sky per column
    if not np.any(depth):
        return run
    cut = int(np.median(depth[depth > 0]))
    run[cut:] = False
    return run


def _grey(frame: np.ndarray, scale: float) -> np.ndarray:
    """RGB uint8 [H, W, 3] -> float32 [h, w] grey, downscaled, mean 128 and std _GREY_STD.

    Normalising each frame by its own mean and std removes a global brightness/contrast
    swing (time-lapse exposure, the synthetic light cycle) that would otherwise read as
    motion to a brightness-constancy flow.
    """
    g = cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY).astype(np.float32)
    if scale != 1.0:
        h, w = g.shape
        g = cv2.resize(g, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    std = float(g.std())
    return (g - float(g.mean())) * (_GREY_STD / max(std, 1e-3)) + 128.0


def _moving(prev: np.ndarray, nxt: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Pixels [h, w] bool of `region` whose grey level changed: where clouds actually move.

    Clear sky has no texture and the sky gradient, the sun's glow and the stars are textured
    but still; their flow is ~0 and would drag a median towards 0. The frames are already
    brightness-normalised, so a temporal difference is motion (times the local gradient).
    """
    diff = cv2.GaussianBlur(np.abs(nxt - prev), (0, 0), 1.0)  # [h, w]
    vals = diff[region]
    if vals.size == 0:
        return region
    return region & (diff >= _MOVING_FRACTION * float(np.percentile(vals, 90)))


@dataclass
class _FlowVotes:
    """Per-pair median flows, accumulated one frame at a time (videos are streamed)."""

    scale: float  # working size / video size
    region: np.ndarray  # [h, w] bool, the sky pixels at the working size
    step: int
    flows: list[tuple[float, float]] = field(default_factory=list)  # per voting pair, working px / step frames
    pixel_fractions: list[float] = field(default_factory=list)  # per voting pair
    pairs_seen: int = 0

    def add(self, prev: np.ndarray, nxt: np.ndarray) -> None:
        """One pair of normalised grey frames [h, w], `step` frames apart."""
        self.pairs_seen += 1
        flow = cv2.calcOpticalFlowFarneback(prev, nxt, None, *_FARNEBACK)  # [h, w, 2] (dx, dy)
        use = _moving(prev, nxt, self.region)
        n = int(use.sum())
        if n < _MIN_PIXELS:
            return
        f = flow[use]  # [n, 2]
        self.flows.append((float(np.median(f[:, 0])), float(np.median(f[:, 1]))))
        self.pixel_fractions.append(n / use.size)

    def result(self) -> tuple[float, float, dict[str, Any]]:
        """(dx_px, dy_px) at the video's size, per frame, and the stats."""
        stats: dict[str, Any] = {
            "pairs": self.pairs_seen,
            "pairs_used": len(self.flows),
            "frames_used": len(self.flows) / max(self.pairs_seen, 1),
            "pixels_used": float(np.mean(self.pixel_fractions)) if self.pixel_fractions else 0.0,
            "region_fraction": float(self.region.mean()),
            "scale": self.scale,
            "step": self.step,
        }
        if not self.flows:
            raise ValueError(f"no frame pair had {_MIN_PIXELS} moving sky pixels "
                             f"({self.pairs_seen} pairs, sky region {stats['region_fraction']:.1%} of the frame)")
        f = np.asarray(self.flows)  # [pairs, 2], working pixels per `step` frames
        # Median over pairs: robust to a few cut/flash frames; back to the video's pixels and one frame.
        dx, dy = np.median(f, axis=0) / (self.scale * self.step)
        return float(dx), float(dy), stats


def _working_scale(height: int, width: int, max_side: int | None) -> float:
    return 1.0 if not max_side or max(height, width) <= max_side else max_side / max(height, width)


def _region_at(mask: np.ndarray | None, height: int, width: int, scale: float) -> np.ndarray:
    """The sky region [h, w] bool at the working size (top third of the frame without a mask)."""
    h, w = max(1, round(height * scale)), max(1, round(width * scale))
    if mask is None:
        region = np.zeros((h, w), dtype=bool)
        region[: max(1, h // 3)] = True
        return region
    if mask.shape != (height, width):
        raise ValueError(f"mask is {mask.shape[1]}x{mask.shape[0]} (W x H) but the video is {width}x{height}")
    if not mask.any():
        raise ValueError("empty mask: no dynamic (sky/water) pixel")
    sky = sky_region(mask)
    if not sky.any():
        raise ValueError("the mask has no sky touching the top of the frame")
    small = cv2.resize(sky.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST).astype(bool)
    # Pixels next to the static skyline see a moving cloud against a still ridge: drop a rim.
    k = 2 * _EDGE_MARGIN + 1
    eroded = cv2.erode(small.astype(np.uint8), np.ones((k, k), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return eroded.astype(bool) if eroded.any() else small


def _measure_stream(
    frames: Iterable[np.ndarray],  # [H, W, 3] uint8 each
    mask: np.ndarray | None,  # [H, W] bool
    max_side: int | None,
    step: int,
) -> tuple[float, float, dict[str, Any]]:
    """The flow core shared by arrays and streamed videos: never holds more than step+1 frames."""
    if step < 1:
        raise ValueError(f"step must be >= 1, got {step}")
    votes: _FlowVotes | None = None
    window: list[np.ndarray] = []  # the last `step` grey frames
    count = 0
    for frame in frames:
        if frame.ndim != 3 or frame.shape[-1] != 3 or frame.dtype != np.uint8:
            raise ValueError(f"frames must be [H, W, 3] uint8 RGB, got {frame.shape} {frame.dtype}")
        if votes is None:
            height, width = frame.shape[:2]  # the video's size: the result is in its pixels
            scale = _working_scale(height, width, max_side)
            votes = _FlowVotes(scale, _region_at(mask, height, width, scale), step)
        g = _grey(frame, votes.scale)
        if len(window) == step:
            votes.add(window.pop(0), g)
        window.append(g)
        count += 1
    if votes is None or count <= step:
        raise ValueError(f"too few frames: {count} (need at least {step + 1} for step {step})")
    dx, dy, stats = votes.result()
    stats.update(frames=count, height=height, width=width)
    return dx, dy, stats


def measure_motion(
    frames: np.ndarray,  # [T, H, W, 3] uint8 RGB
    mask: np.ndarray | None = None,  # [H, W] bool, True = dynamic (sky + water)
    max_side: int = 256,  # flow runs at most this size (longest side), the result is rescaled
    step: int = 1,  # compare frames this far apart; the flow is divided by it
) -> tuple[float, float, dict[str, Any]]:
    """The median cloud drift (dx_px, dy_px) in pixels per frame at the frames' size, and stats.

    Flow is measured between frames `step` apart (a larger step helps slow clouds rise above
    the flow's noise floor), on the sky pixels that change (clouds, not the still sun, stars or
    sky gradient), and reduced to a median per frame pair, then a median over pairs. Stats:
    pairs, pairs_used, frames_used, pixels_used, region_fraction, scale, step, frames, height,
    width. Raises ValueError when nothing could be measured (too few frames, no sky).
    """
    frames = np.asarray(frames)
    assert frames.ndim == 4 and frames.shape[-1] == 3, f"frames must be [T, H, W, 3], got {frames.shape}"
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
    return _measure_stream(iter(frames), mask, max_side, step)


# ---------------------------------------------------------------------------
# one video


def _stem(uri: str) -> str:
    name = str(uri).rstrip("/").rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name


def mask_uri_for(video_uri: str, masks_uri: str | None = None) -> str | None:
    """The existing `NAME.mask.png` of a video, in `masks_uri` or next to it; None when absent.

    Local videos use `synth.mask_path_for`; `s3://` URIs are joined as strings (a Path would
    fold the `//`).
    """
    if masks_uri:
        candidate = storage.join(masks_uri, _stem(video_uri) + MASK_SUFFIX)
    elif storage.is_remote(video_uri):
        candidate = storage.join(str(video_uri).rsplit("/", 1)[0], _stem(video_uri) + MASK_SUFFIX)
    else:
        candidate = str(mask_path_for(storage.resolve(video_uri)[1]))
    return candidate if storage.exists(candidate) else None


def _load_mask(uri: str) -> np.ndarray:
    """A mask PNG -> [H, W] bool (255 = dynamic)."""
    try:
        with Image.open(io.BytesIO(storage.read_bytes(uri))) as im:
            return np.asarray(im.convert("L")) > 127
    except OSError as e:
        raise ValueError(f"cannot read mask {uri}: {e}") from e


def _video_frames(uri: str, tmp_dir: str) -> Iterator[np.ndarray]:
    """Stream a local or remote video's frames [H, W, 3]; remote files are copied to tmp_dir."""
    if storage.is_remote(uri):
        local = os.path.join(tmp_dir, "video" + os.path.splitext(uri)[1])
        with open(local, "wb") as f:
            f.write(storage.read_bytes(uri))
        return iter_frames(local)
    return iter_frames(storage.resolve(uri)[1])


def measure_video(
    uri: str,
    mask_uri: str | None = None,  # None: NAME.mask.png next to the video when it exists
    max_side: int = 256,
    step: int = 1,
) -> VideoMotion:
    """Measure one video; an unreadable file, too few frames or an empty mask give an `error` row.

    Expected failures become rows rather than exceptions because one broken file in a
    collection of thousands must not cost the whole calibration.
    """
    row = VideoMotion(uri=str(uri), mask_uri=mask_uri)
    try:
        row.mask_uri = mask_uri = mask_uri or mask_uri_for(uri)
        mask = _load_mask(mask_uri) if mask_uri else None
        with tempfile.TemporaryDirectory() as tmp:
            dx_px, dy_px, stats = _measure_stream(_video_frames(uri, tmp), mask, max_side, step)
    except (VideoError, OSError, ValueError) as e:
        row.error = f"{type(e).__name__}: {e}"
        return row
    height, width = stats["height"], stats["width"]
    dx, dy = 2.0 * dx_px / width, 2.0 * dy_px / height  # [-1, 1] spans the width (height)
    row.width, row.height, row.frames, row.pairs = width, height, stats["frames"], stats["pairs_used"]
    row.dx_px, row.dy_px, row.dx, row.dy = dx_px, dy_px, dx, dy
    row.speed = math.hypot(dx, dy)
    row.angle_deg = math.degrees(math.atan2(-dy, dx))  # y down in the image, up on the clock
    row.frames_used, row.pixels_used = stats["frames_used"], stats["pixels_used"]
    return row


# ---------------------------------------------------------------------------
# a collection, with Ray Data


def _measure_row(row: dict[str, Any]) -> dict[str, Any]:
    """Ray Data map: one video -> one VideoMotion row. Never raises: a bad video is a row."""
    cv2.setNumThreads(1)  # the task holds one CPU; OpenCV would start a thread per core
    try:
        vm = measure_video(row["uri"], row["mask_uri"] or None, int(row["max_side"]), int(row["step"]))
    except Exception as e:  # noqa: BLE001 - one bad video must not abort the collection
        vm = VideoMotion(uri=row["uri"], mask_uri=row["mask_uri"] or None, error=f"{type(e).__name__}: {e}")
    # JSON in one string column: error rows (None floats) and good rows then share one
    # Arrow schema whichever block they land in.
    return {"index": row["index"], "motion": json.dumps(asdict(vm))}


def calibrate(
    video_uris: list[str],
    masks: Mapping[str, str] | None = None,  # video uri -> mask uri; others: NAME.mask.png next to it
    max_side: int = 256,
    step: int = 1,
) -> list[VideoMotion]:
    """Measure every video in parallel with Ray Data (one task per video); rows in input order.

    Ray is started or joined first (`ensure_ray`) unless the caller has done so.
    """
    import ray

    if not video_uris:
        return []
    masks = dict(masks or {})
    items = [{"index": i, "uri": str(u), "mask_uri": masks.get(str(u), ""), "max_side": max_side, "step": step}
             for i, u in enumerate(video_uris)]
    ensure_ray()
    ds = ray.data.from_items(items, override_num_blocks=len(items)).map(_measure_row, num_cpus=1)
    rows = sorted(ds.take_all(), key=lambda r: int(r["index"]))
    return [VideoMotion.from_dict(json.loads(r["motion"])) for r in rows]


# ---------------------------------------------------------------------------
# motions


def _hour_of(angle_deg: float) -> int:
    """The clock hour (1..12) whose direction is nearest to a clock angle (0 = 3h, 90 = 12h)."""
    h = (3 - round(angle_deg / 30.0)) % 12
    return 12 if h == 0 else h


def _translation(name: str, angle_deg: float, speed: float, parallax: float = HORIZON_PARALLAX) -> Motion:
    """A drift along a clock angle: top corners at `speed`, horizon points `parallax` times slower.

    The horizon points keep dy = 0 (the horizon line maps onto itself, homography docstring),
    so a vertical drift squeezes or stretches the sky towards the horizon.
    """
    a = math.radians(angle_deg)
    c, s = round(math.cos(a), 12), round(math.sin(a), 12)
    top = (speed * c, -speed * s)  # y down
    low = (speed * c / parallax, 0.0)
    return Motion(name, (top, top, low, low))


def motions_from_measurements(
    measured: list[VideoMotion],
    n_dominant: int = 3,  # at most this many `measured-k` directions
) -> tuple[dict[str, Motion], dict[str, Any]]:
    """The 12 clock directions at the median measured speed, plus the dominant measured ones.

    "3h" then moves its top corners exactly the median speed per frame. The videos' angles
    are binned to the nearest clock hour; the k fullest bins become `measured-1..k`, each a
    translation along the circular mean of its videos' angles at their median speed.
    Returns (motions, summary); raises ValueError when no video was measured.
    """
    ok = [m for m in measured if m.ok]
    if not ok:
        raise ValueError(f"no video could be measured ({len(measured)} tried); first errors: "
                         + "; ".join(f"{m.uri}: {m.error}" for m in measured[:3]))
    speeds = np.array([m.speed for m in ok], dtype=np.float64)
    median_speed = float(np.median(speeds))
    motions = {f"{h}h": clock_motion(h, top_speed=median_speed) for h in range(1, 13)}

    bins: dict[int, list[VideoMotion]] = {}
    for m in ok:
        if m.speed is not None and m.speed > _STILL_SPEED and m.angle_deg is not None:
            bins.setdefault(_hour_of(m.angle_deg), []).append(m)
    # Fullest bins first; ties go to the faster bin, then the earlier hour, so the order is stable.
    ranked = sorted(bins.items(), key=lambda kv: (-len(kv[1]), -float(np.median([m.speed for m in kv[1]])), kv[0]))
    directions = []
    for k, (hour, members) in enumerate(ranked[:n_dominant], start=1):
        a = np.radians([m.angle_deg for m in members])
        angle = float(np.degrees(np.arctan2(np.sin(a).mean(), np.cos(a).mean())))
        speed = float(np.median([m.speed for m in members]))
        motions[f"measured-{k}"] = _translation(f"measured-{k}", angle, speed)
        directions.append({"name": f"measured-{k}", "hour": f"{hour}h", "videos": len(members),
                           "angle_deg": angle, "speed": speed, "speed_px_at_256": speed * 128.0})
    summary = {
        "videos": len(measured),
        "measured": len(ok),
        "failed": len(measured) - len(ok),
        "median_speed": median_speed,  # normalised units per frame = "3h" top-corner dx
        "median_speed_px_at_256": median_speed * 128.0,  # 2 normalised units span 256 px
        "speed_quartiles": [float(q) for q in np.percentile(speeds, [25, 50, 75])],
        "direction_counts": {f"{h}h": len(bins.get(h, [])) for h in range(1, 13)},
        "directions": directions,
    }
    return motions, summary


def list_videos(videos_uri: str) -> list[str]:
    """Video files under a folder (or one file), without the `*.mask.png` next to them."""
    return [u for u in storage.list_files(videos_uri, VIDEO_SUFFIXES) if not is_mask_file(u)]


def report_path_for(out_path: str) -> str:
    """`motions.json` -> `motions.report.json`."""
    p = str(out_path)
    return (p[: -len(".json")] if p.endswith(".json") else p) + ".report.json"


def run_calibration(
    videos_uri: str,  # a folder (local or s3://) of time-lapses, masks may sit next to them
    out_path: str,  # the motions JSON (load_motions); the report goes to *.report.json
    masks_uri: str | None = None,  # a folder of NAME.mask.png when they are not next to the videos
    n_dominant: int = 3,
    max_side: int = 256,
    step: int = 1,
) -> dict[str, Any]:
    """List, measure, write motions + report; returns the summary.

    The report (every video's measurement, failures included) is written even when no video
    could be measured, so the user can see why before the ValueError.
    """
    uris = list_videos(videos_uri)
    if not uris:
        raise FileNotFoundError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) under {videos_uri}")
    masks = {u: m for u in uris if (m := mask_uri_for(u, masks_uri)) is not None}
    measured = calibrate(uris, masks, max_side=max_side, step=step)
    report_path = report_path_for(out_path)
    report: dict[str, Any] = {"videos_uri": str(videos_uri), "masks_uri": masks_uri, "max_side": max_side,
                              "step": step, "videos": [asdict(m) for m in measured]}
    try:
        motions, summary = motions_from_measurements(measured, n_dominant)
    except ValueError as e:
        report["error"] = str(e)
        _write_json(report_path, report)
        raise
    summary = {**summary, "out_path": str(out_path), "report": report_path}
    report["summary"] = summary
    with tempfile.TemporaryDirectory() as tmp:  # save_motions writes local files; storage also does s3://
        local = os.path.join(tmp, "motions.json")
        save_motions(local, motions)
        storage.write_bytes(out_path, Path(local).read_bytes())
    _write_json(report_path, report)
    return summary


def _write_json(uri: str, data: dict[str, Any]) -> None:
    storage.write_text(uri, json.dumps(data, indent=1) + "\n")
