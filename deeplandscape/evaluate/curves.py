"""Metric curves over the frame index between two video collections (the paper's Fig. 7).

For frame indices n = 0, k, 2k, ... (k = `every`), with A the real videos and B the generated:
- FID between the set of reference frames and the set of n-th frames of B;
- LPIPS and SSIM between each B video's n-th frame and its A video's reference frame, on the
  static pixels: A's ground-truth mask ``NAME.mask.png`` (sky and water out) when it has one,
  else every pixel (the result says how many pairs had a mask).

`reference` "same" compares I_n with Î_n (Fig. 7 right: "between I_n and Î_n"); "first"
compares I_0 with Î_n (Fig. 7 left and middle: how fast the animation drifts from the photo).

Pairing: B's ``x.mp4`` goes with A's ``y.mp4`` when x == y or x starts with y + "-" or y + "_",
so several generated videos per real one (one per homography) all pair with it; LPIPS and
SSIM need pairs, FID does not (unpaired B videos still count for FID).

The work runs on a Ray Data actor pool, one video per row; features are reduced to
per-block statistics per frame index (groups "a/n", "b/n") as for FID, and only the per-pair
scalars travel to the driver. The animation protocol builds on this function.
"""

from __future__ import annotations

import dataclasses
import io
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from PIL import Image

from deeplandscape import storage
from deeplandscape.raykit import actor_device, ensure_ray
from deeplandscape.video import iter_frames

from . import report, weights
from .fid import InceptionFeatures
from .image_metrics import LPIPS_BACKBONES, MaskedLPIPS, masked_ssim_per_image
from .inputs import MASK_SUFFIX, list_entries, local_file, mask_uri_for
from .pipeline import run_block_stats
from .stats import frechet_distance

__all__ = ["CurveSettings", "pair_videos", "read_frames", "frame_curves", "curve_plots"]

_BACKBONE = LPIPS_BACKBONES


@dataclass
class CurveSettings:
    metrics: tuple[str, ...] = ("fid", "lpips", "ssim")
    reference: str = "same"  # "same": I_n vs generated n-th frame; "first": I_0 vs generated n-th frame
    every: int = 1  # frame indices 0, every, 2 * every, ...
    max_frames: int | None = None  # frame indices below this only
    lpips_net: str = "vgg"
    workers: int = 2
    batch_size: int = 1  # videos per actor call
    use_gpu: bool = False

    def __post_init__(self) -> None:
        unknown = set(self.metrics) - {"fid", "lpips", "ssim"}
        if unknown or not self.metrics:
            raise ValueError(f"curve metrics are fid, lpips, ssim; got {self.metrics}")
        if self.reference not in ("same", "first"):
            raise ValueError(f"reference must be 'same' or 'first', got {self.reference!r}")
        if self.every < 1:
            raise ValueError(f"every must be >= 1, got {self.every}")


def _stem(uri: str) -> str:
    return PurePosixPath(uri).stem


def pair_videos(a_uris: list[str], b_uris: list[str]) -> dict[str, str]:
    """B uri -> its A uri, by file name (longest matching A name first); unpaired B left out."""
    by_stem = sorted(((_stem(a), a) for a in a_uris), key=lambda t: -len(t[0]))
    out = {}
    for b in b_uris:
        sb = _stem(b)
        for sa, a in by_stem:
            if sb == sa or sb.startswith(sa + "-") or sb.startswith(sa + "_"):
                out[b] = a
                break
    return out


def read_frames(uri: str, indices: set[int] | None, limit: int | None = None) -> dict[int, np.ndarray]:
    """Frames {n: uint8 [H, W, 3]} of a video (local or s3://): those in `indices` (all when
    None) below `limit`; decoding stops after the last one needed."""
    last = None if indices is None else max(indices, default=-1)
    out: dict[int, np.ndarray] = {}
    with local_file(uri) as path:
        frames = iter_frames(path)
        try:
            for n, frame in enumerate(frames):
                if (limit is not None and n >= limit) or (last is not None and n > last):
                    break
                if indices is None or n in indices:
                    out[n] = frame
        finally:
            frames.close()
    return out


def _static_mask(uri: str, h: int, w: int) -> np.ndarray:
    """bool [H, W], True where A's ground-truth mask says static (not sky or water)."""
    with Image.open(io.BytesIO(storage.read_bytes(uri))) as m:
        m = m.convert("L")
        if m.size != (w, h):
            m = m.resize((w, h), Image.NEAREST)
        return np.asarray(m) < 128


class _CurveActor:
    """Ray Data actor: rows {a, b, mask}. A row with b == "" gives the Inception features of
    A's reference frames (group "a/n"); a row with b gives B's features (group "b/n") and,
    when paired (a != ""), the masked LPIPS / SSIM of each B frame against A's reference."""

    def __init__(self, settings: dict, inception_path: str | None, backbone_path: str | None):

        self.s = CurveSettings(**{**settings, "metrics": tuple(settings["metrics"])})
        device = actor_device(self.s.use_gpu)
        self.inception = InceptionFeatures(device, inception_path) if "fid" in self.s.metrics else None
        self.lpips = MaskedLPIPS(self.s.lpips_net, device, backbone_path) if "lpips" in self.s.metrics else None
        self.dim = 2048 if self.inception else 1

    def _frames(self, uri: str, first_only: bool = False) -> dict[int, np.ndarray]:
        if first_only:
            return read_frames(uri, {0})
        got = read_frames(uri, None, self.s.max_frames)
        return {n: f for n, f in got.items() if n % self.s.every == 0}

    def _row(self, out: dict, group: str, uri: str, features, use: bool, frame: int, lp=np.nan, ss=np.nan,
             status: str = "ok", message: str = "") -> None:
        for k, v in (("group", group), ("uri", uri), ("features", features), ("use_features", use),
                     ("status", status), ("message", message), ("frame", frame), ("lpips", lp), ("ssim", ss)):
            out[k].append(v)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out: dict[str, list] = {k: [] for k in ("group", "uri", "features", "use_features", "status", "message",
                                                "frame", "lpips", "ssim")}
        for a, b, mask in zip(batch["a"].tolist(), batch["b"].tolist(), batch["mask"].tolist()):
            try:
                self._video(out, a, b, mask)
            except Exception as e:  # noqa: BLE001 - carried as a row; the driver raises
                self._row(out, "error", b or a, np.zeros(self.dim, np.float32), False, -1,
                          status="error", message=f"{type(e).__name__}: {e}")
        return {k: np.asarray(v) for k, v in out.items()}

    def _features(self, frames: list[np.ndarray]) -> np.ndarray:
        if self.inception is None:
            return np.zeros((len(frames), 1), np.float32)
        return self.inception.features(np.stack(frames)).astype(np.float32)

    def _video(self, out: dict, a: str, b: str, mask: str) -> None:
        first = self.s.reference == "first"
        if not b:  # reference frames of a real video, for FID
            ref = self._frames(a, first_only=first)
            ns = sorted(ref)
            for n, f in zip(ns, self._features([ref[n] for n in ns])):
                self._row(out, f"a/{n}", a, f, True, n)
            return
        gen = self._frames(b)
        ns = sorted(gen)
        feats = self._features([gen[n] for n in ns])
        lp = np.full(len(ns), np.nan)
        ss = np.full(len(ns), np.nan)
        if a and ({"lpips", "ssim"} & set(self.s.metrics)):
            ref = self._frames(a, first_only=first)
            usable = [i for i, n in enumerate(ns) if (0 if first else n) in ref]
            if usable:
                x = np.stack([ref[0 if first else ns[i]] for i in usable])  # [P, H, W, 3]
                y = np.stack([gen[ns[i]] for i in usable])
                if x.shape != y.shape:
                    raise ValueError(f"frames differ in size: {a} {x.shape[1:]} vs {b} {y.shape[1:]}")
                keep = _static_mask(mask, *x.shape[1:3]) if mask else np.ones(x.shape[1:3], bool)
                if self.lpips is not None:
                    lp[usable] = self.lpips.per_image(x, y, keep)
                if "ssim" in self.s.metrics:

                    ss[usable] = masked_ssim_per_image(x, y, keep)
        for i, n in enumerate(ns):
            self._row(out, f"b/{n}", b, feats[i], True, n, lp[i], ss[i])


def frame_curves(a: str, b: str, settings: CurveSettings = CurveSettings()) -> dict[str, Any]:
    """Curves {frames: [n...], fid: [...], lpips: [...], ssim: [...]} and counts.

    `a`: the real videos (folder or s3:// prefix), `b`: the generated ones. A value is None
    where too few videos reach that frame (FID needs 2 per side) or no pair does (LPIPS and
    SSIM are all None when no B video pairs with an A video by name).
    """
    import ray

    s = settings
    a_uris = [e.uri for e in list_entries(a, "videos")]
    b_uris = [e.uri for e in list_entries(b, "videos")]
    pairs = pair_videos(a_uris, b_uris)
    masks = set(storage.list_files(a, (MASK_SUFFIX,)))
    rows = [{"a": u, "b": "", "mask": ""} for u in a_uris] if "fid" in s.metrics else []  # A's reference frames
    for u in b_uris:
        real = pairs.get(u, "")
        mask = mask_uri_for(real) if real else ""
        rows.append({"a": real, "b": u, "mask": mask if mask in masks else ""})
    inception = str(weights.weight_path("inception")) if "fid" in s.metrics else None
    backbone = str(weights.weight_path(_BACKBONE[s.lpips_net])) if "lpips" in s.metrics else None
    ensure_ray()
    ds = ray.data.from_items(rows)
    ds = ds.map_batches(_CurveActor, fn_constructor_kwargs=dict(settings=dataclasses.asdict(s), inception_path=inception,
                                                                backbone_path=backbone),
                        batch_size=s.batch_size, compute=ray.data.ActorPoolStrategy(size=s.workers), num_cpus=1,
                        **({"num_gpus": 1} if s.use_gpu else {}))
    groups = run_block_stats(ds, 2048 if inception else 1, keep=("lpips", "ssim"))
    errors = [e for g in groups.values() for e in g.errors]
    if errors:
        raise RuntimeError(f"{len(errors)} videos could not be read:\n  " + "\n  ".join(errors[:20]))
    return _assemble(groups, s, pairs, rows)


def _assemble(groups: dict, s: CurveSettings, pairs: dict, rows: list[dict]) -> dict[str, Any]:
    frames = sorted({int(g.split("/")[1]) for g in groups if g.startswith("b/")})
    curves: dict[str, list] = {m: [] for m in s.metrics}
    for n in frames:
        fake = groups[f"b/{n}"]
        ref = groups.get(f"a/{0 if s.reference == 'first' else n}")
        if "fid" in s.metrics:
            ok = ref is not None and ref.stats.n >= 2 and fake.stats.n >= 2
            curves["fid"].append(frechet_distance(ref.stats.mean(), ref.stats.cov(), fake.stats.mean(),
                                                  fake.stats.cov()) if ok else None)
        for m in ("lpips", "ssim"):
            if m in s.metrics:
                v = np.asarray(fake.kept.get(m, []), float)
                v = v[np.isfinite(v)]
                curves[m].append(float(v.mean()) if v.size else None)
    means = {m: (float(np.mean([v for v in c if v is not None])) if any(v is not None for v in c) else None)
             for m, c in curves.items()}
    return {"frames": frames, **curves, "mean_over_frames": means, "reference": s.reference,
            "videos": {"a": sum(1 for r in rows if not r["b"]), "b": sum(1 for r in rows if r["b"]),
                       "pairs": len(pairs), "pairs_with_mask": sum(1 for r in rows if r["b"] and r["mask"])}}


def curve_plots(curves: dict) -> str:
    """HTML: one SVG line plot per metric of `frame_curves`' result, and the pair counts."""

    ref = "I_0" if curves["reference"] == "first" else "I_n"
    titles = {"fid": "FID", "lpips": "LPIPS (static pixels)", "ssim": "SSIM (static pixels)"}
    plots = []
    for m, title in titles.items():
        if m in curves:
            mean = curves["mean_over_frames"][m]
            label = f"B (mean {mean:.4g})" if mean is not None else "B"
            plots.append(report.line_plot({label: (curves["frames"], [float("nan") if v is None else v
                                                                       for v in curves[m]])},
                                          f"{title} between {ref} and generated frame n", "frame index n", title))
    counts = curves["videos"]
    note = (f"<p class='note'>{counts['a']} real and {counts['b']} generated videos, {counts['pairs']} paired by name, "
            f"{counts['pairs_with_mask']} with a ground-truth mask (the others compare every pixel).</p>")
    return "".join(plots) + note
