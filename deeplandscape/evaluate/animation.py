"""The animation protocol (paper 4.2, Fig. 7): animate the first frame of real time-lapses
and compare the animation with the real video, frame by frame.

For every real video V (a folder or s3:// prefix of time-lapses, `NAME.mask.png` next to a
video marks its sky and water):

1. its first `frames` frames are framed as the inversion frames a photo (`invert.fit`,
   centre crop by default) at the run's resolution and written to ``OUT/real/NAME.mp4``, with
   the mask to ``OUT/real/NAME.mask.png``: both sides are compared at the model's resolution;
2. frame 0 goes to ``OUT/photos/NAME.png`` (with its mask, so `auto` inverts with EOIFS) and
   `deeplandscape animate` brings it to life: ``OUT/animated/NAME/<direction>.mp4``;
3. the animations are gathered as ``OUT/generated/NAME-<direction>.mp4`` and
   `curves.frame_curves` computes FID, LPIPS and SSIM per frame index n between the real and
   the animated frames (static pixels for LPIPS and SSIM), with I_n or I_0 as the reference.

A video that cannot be read is listed in ``metrics.json`` and left out; the others go on.
"""

from __future__ import annotations

import dataclasses
import io
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from deeplandscape import storage
from deeplandscape.invert.animate_photos import animate_photos
from deeplandscape.invert.photos import fit_square
from deeplandscape.render import VideoOutputs
from deeplandscape.runs import load_model
from deeplandscape.video import probe_video, write_video

from . import report, weights
from .curves import CurveSettings, curve_plots, frame_curves, read_frames
from .image_metrics import LPIPS_BACKBONES
from .inputs import MASK_SUFFIX, list_entries, mask_uri_for

__all__ = ["AnimationSettings", "evaluate_animation"]


@dataclass
class AnimationSettings:
    frames: int = 32  # frames of each real video compared (and frames animated)
    every: int = 1  # frame indices 0, every, 2 * every, ...
    reference: str = "same"  # "same": I_n vs Î_n (Fig. 7 right); "first": I_0 vs Î_n (Fig. 7 left, middle)
    # Homographies, one animation each: a count N (N distinct clock directions per video, drawn
    # from its name; the paper samples five per image) or the clock directions themselves.
    directions: int | tuple[str, ...] = 5
    speed: float = 2.5
    metrics: tuple[str, ...] = ("fid", "lpips", "ssim")
    lpips_net: str = "vgg"
    workers: int = 2
    use_gpu: bool = False

    def __post_init__(self) -> None:
        if self.frames < 2:
            raise ValueError(f"frames must be >= 2, got {self.frames}")
        if self.reference not in ("same", "first"):
            raise ValueError(f"reference must be 'same' or 'first', got {self.reference!r}")
        if isinstance(self.directions, int):
            if not 1 <= self.directions <= 12:
                raise ValueError(f"directions must be a count in 1..12 or clock directions, got {self.directions}")
        elif not self.directions:
            raise ValueError("give at least one direction")

    def described_directions(self) -> str:
        if isinstance(self.directions, int):
            return f"{self.directions} per video, drawn from its name"
        return ", ".join(self.directions)


def _write_video(frames: list[np.ndarray], uri: str, fps: float) -> None:

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "v.mp4"
        write_video(path, np.stack(frames), fps=fps)
        storage.write_bytes(uri, path.read_bytes())


def _png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def prepare_video(uri: str, name: str, out_dir: str, resolution: int, fit: str, frames: int,
                  has_mask: bool) -> None:
    """Step 1 and the photo of step 2 for one real video (see the module doc)."""

    got = read_frames(uri, None, frames)
    if len(got) < 2:
        raise ValueError(f"{uri}: {len(got)} frame(s), need at least 2")
    first = got[0]
    squares = [fit_square(got[n], resolution, fit)[0] for n in sorted(got)]
    fps = 30.0
    if not storage.is_remote(uri):
        fps = probe_video(storage.resolve(uri)[1]).fps or fps
    _write_video(squares, storage.join(out_dir, "real", f"{name}.mp4"), fps)
    storage.write_bytes(storage.join(out_dir, "photos", f"{name}.png"), _png(first))
    if has_mask:
        with Image.open(io.BytesIO(storage.read_bytes(mask_uri_for(uri)))) as m:
            mask = np.asarray(m.convert("L"))
        if mask.shape != first.shape[:2]:
            raise ValueError(f"{mask_uri_for(uri)} is {mask.shape[1]}x{mask.shape[0]}, its video "
                             f"{first.shape[1]}x{first.shape[0]}")
        storage.write_bytes(storage.join(out_dir, "photos", f"{name}{MASK_SUFFIX}"), _png(mask))
        square = fit_square(np.repeat(mask[..., None], 3, axis=2), resolution, fit)[0][..., 0]
        storage.write_bytes(storage.join(out_dir, "real", f"{name}{MASK_SUFFIX}"),
                            _png(np.where(square > 127, 255, 0).astype(np.uint8)))


def evaluate_animation(run_dir: str, real_videos: str, out_dir: str, s: AnimationSettings = AnimationSettings(),
                       icfg=None, log=print) -> dict[str, Any]:
    """Run the protocol; write ``metrics.json`` and ``index.html`` to `out_dir`; return the metrics.

    `icfg`: the inversion settings (`animate_photos.inversion_config`), the run's by default."""

    start = time.perf_counter()
    run_dir = run_dir if storage.is_remote(run_dir) else storage.resolve(run_dir)[1]
    out_dir = out_dir if storage.is_remote(out_dir) else storage.resolve(out_dir)[1]  # actors may run elsewhere
    for name in (["inception"] if "fid" in s.metrics else []) + (
            [LPIPS_BACKBONES[s.lpips_net]] if "lpips" in s.metrics else []):
        weights.weight_path(name)  # a missing file fails now, before any work, naming the fetch command
    model = load_model(run_dir)
    icfg = icfg or model.cfg.invert
    videos = list_entries(real_videos, "videos")
    if not videos:
        raise FileNotFoundError(f"no videos (.mp4, .mov, ...) under {real_videos}")
    masks = set(storage.list_files(real_videos, (MASK_SUFFIX,)))
    names: dict[str, str] = {}
    failed = []
    for entry in videos:
        name = PurePosixPath(entry.uri).stem
        if name in names.values():
            name = f"{name}-{len(names)}"
        try:
            prepare_video(entry.uri, name, out_dir, model.resolution, icfg.fit, s.frames,
                          mask_uri_for(entry.uri) in masks)
            names[entry.uri] = name
        except Exception as e:  # noqa: BLE001 - one bad video is recorded, the others go on
            failed.append({"input": entry.uri, "error": f"{type(e).__name__}: {e}"})
            log(f"animation protocol: skipped {entry.uri}: {e}")
    if not names:
        raise ValueError(f"none of the {len(videos)} videos under {real_videos} could be read: {failed[:3]}")
    log(f"animation protocol: {len(names)} real videos at {model.resolution} px, animating their first frames")
    animated = animate_photos([storage.join(out_dir, "photos")], run_dir, storage.join(out_dir, "animated"),
                              homographies=s.directions if isinstance(s.directions, int) else len(s.directions),
                              directions=None if isinstance(s.directions, int) else list(s.directions), frames=s.frames,
                              speed=s.speed, icfg=icfg, outputs=VideoOutputs(fps=30, scale=1),
                              device="cuda" if s.use_gpu else "cpu", log=log)
    failed += animated["failed"]
    generated = storage.join(out_dir, "generated")
    for result in animated["results"]:
        name = PurePosixPath(result["input"]).stem
        for key in result["outputs"]:
            if key.endswith(".mp4"):
                storage.write_bytes(storage.join(generated, f"{name}-{PurePosixPath(key).stem}.mp4"),
                                    storage.read_bytes(key))
    curves = frame_curves(storage.join(out_dir, "real"), generated, CurveSettings(
        metrics=s.metrics, reference=s.reference, every=s.every, max_frames=s.frames, lpips_net=s.lpips_net,
        workers=s.workers, use_gpu=s.use_gpu))
    inversion = {r["input"]: {"method": r["method"], "l1": {k: v[0] for k, v in r["losses"].items()}}
                 for r in animated["results"]}
    metrics = {
        "protocol": "animation",
        **{m: curves["mean_over_frames"][m] for m in s.metrics},
        "curves": curves,
        "videos": len(videos), "animated": len(animated["results"]), "failed": failed,
        "inversion": inversion,
        "model": {"run_dir": run_dir, "checkpoint": model.checkpoint, "kimg": model.kimg,
                  "resolution": model.resolution},
        "settings": {**dataclasses.asdict(s), "invert": dataclasses.asdict(icfg)},
        "seconds": time.perf_counter() - start,
    }
    ref = "I_0" if s.reference == "first" else "I_n"
    summary = report.table(
        [(f"{m.upper()} (mean over frames, {ref} vs animated frame n)", metrics[m]) for m in s.metrics]
        + [("real videos", len(videos)), ("animated", metrics["animated"]), ("failed", len(failed)),
           ("model", f"{model.resolution} px at {model.kimg:.2f} kimg"),
           ("directions", s.described_directions()), ("frames", s.frames)])
    sections = [report.Section("Summary", summary),
                report.Section("Per frame index (as the paper's Fig. 7)", curve_plots(curves))]
    if failed:
        sections.append(report.Section("Left out", report.table([(f["input"], f["error"]) for f in failed])))
    metrics["outputs"] = report.write_report(out_dir, "Animation protocol", metrics, sections)
    return metrics
