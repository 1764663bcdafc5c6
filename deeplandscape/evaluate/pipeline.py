"""FID and FVD between two collections, with the features computed by Ray Data actor pools.

    rows {uri, group}
      -> map_batches(_FeatureActor, ActorPoolStrategy(size=workers))   the network loaded once
         per actor; rows {group, uri, features [D], status, message}
      -> map_batches(block_stats, batch_size=stats_rows)              per block and group:
         float64 (sum x, sum x x^T, n) -- the sufficient statistics (REFERENCE "Evaluation")
      -> driver: sums merged per group, one Frechet distance.

Workers reduce their features to sums, so what reaches the driver does not grow with the
number of images, only with the number of blocks. Every collection that needs computing
goes through one pipeline (one actor pool, one network load per actor), each as its own
group. A collection's statistics are cached (`stats_cache`) under a hash of its files and
the settings; a saved ``.npz`` (ours, or pytorch-fid's ``mu``/``sigma``) stands in for a
collection.

A file that cannot be read becomes a row with status "error" (one bad file must not kill a
job of millions, RAY_NOTES "Data"); after the pipeline the errors are raised together, with
the files named, because a metric over a silently smaller set is a different metric. Videos
too short for one clip are skipped and counted, as StyleGAN-V skips them.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deeplandscape import storage
from deeplandscape.raykit import actor_device, ensure_ray

from . import inputs, stats_cache, weights
from .fid import InceptionFeatures
from .fvd import I3DFeatures, TooShortError, read_clips
from .stats import FeatureStats, frechet_distance

__all__ = [
    "FeatureSpec",
    "MeanCov",
    "FeatureExtractor",
    "block_stats",
    "merge_block_rows",
    "run_block_stats",
    "compute_stats",
    "collection_stats",
    "load_stats_file",
    "save_stats",
    "MetricResult",
    "frechet_metric",
    "fid",
    "fvd",
]

PREPROCESS_VERSION = 1  # bump when what the networks see changes: old cache entries then miss


@dataclass(frozen=True)
class FeatureSpec:
    """Which network and which input settings define a collection's features."""

    network: str = "inception"  # "inception" (FID, 2048-d) or "i3d" (FVD, 400-d)
    weights_path: str | None = None  # a file to use instead of the registry's cached one
    resolution: int | None = None  # images only: resize to r x r first (None: as stored)
    clip_len: int = 16  # videos only: frames per clip
    clip_step: int = 1  # videos only: take every k-th frame inside a clip
    clips_per_video: int = 1  # videos only: evenly spaced clips, the first at frame 0

    def __post_init__(self) -> None:
        if self.network not in ("inception", "i3d"):
            raise ValueError(f"network must be 'inception' or 'i3d', got {self.network!r}")

    @property
    def kind(self) -> str:
        """What the collection holds: "images" or "videos"."""
        return "images" if self.network == "inception" else "videos"

    @property
    def dim(self) -> int:
        return 2048 if self.network == "inception" else 400

    def weights_file(self) -> Path:
        """The network file; `MissingWeightsError` (naming the fetch command) when absent."""
        if self.weights_path is None:
            return weights.weight_path(self.network)
        path = Path(self.weights_path)
        if not path.is_file():
            raise weights.MissingWeightsError(weights._missing_message(weights.REGISTRY[self.network], path))
        return path

    def settings(self, with_weights: bool = True) -> dict[str, Any]:
        """Everything that changes the features, for the cache key and metrics.json.
        `with_weights=False` (only saved statistics compared): the network file is not needed."""
        out: dict[str, Any] = {"network": self.network, "weights_file": None, "weights_sha256": None,
                               "preprocess": PREPROCESS_VERSION}
        if with_weights:
            path = self.weights_file()
            out.update(weights_file=path.name, weights_sha256=_sha256(str(path.resolve())))
        if self.kind == "images":
            out["resolution"] = self.resolution
        else:
            out.update(clip_len=self.clip_len, clip_step=self.clip_step, clips_per_video=self.clips_per_video)
        return out


def _sha256(path: str) -> str:
    st = os.stat(path)
    return _sha256_of_version(path, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _sha256_of_version(path: str, size: int, mtime_ns: int) -> str:  # size, mtime: the cache key
    return weights.sha256_of(path)


# ---------------------------------------------------------------- features, one process

class FeatureExtractor:
    """The network of a `FeatureSpec`, loaded once: file URIs -> features, one row per item.

    An image is one item; a video gives `clips_per_video` items (clips).
    """

    def __init__(self, spec: FeatureSpec, device: str | torch.device = "cpu"):
        self.spec = spec
        path = spec.weights_file()
        if spec.network == "inception":

            self.net = InceptionFeatures(device, path)
        else:

            self.net = I3DFeatures(device, path)

    def _read(self, uri: str) -> np.ndarray:
        """uint8 [K, H, W, 3] (K = 1 image) or [K, T, H, W, 3] (K clips)."""
        s = self.spec
        if s.kind == "images":
            return inputs.read_image(uri, s.resolution)[None]

        return read_clips(uri, s.clip_len, s.clip_step, s.clips_per_video)

    def __call__(self, uris: list[str]) -> dict[str, Any]:
        """{"source": [...], "features": float64 [N, D], "status": [...], "message": [...]}.

        source: the index in `uris` each row comes from. status: "ok", "skipped" (a video
        too short for a clip) or "error"; non-ok rows carry zero features and say why.
        """

        rows: list[tuple[int, str, str]] = []  # (source, status, message), one per output row
        items: list[np.ndarray] = []
        for i, uri in enumerate(uris):
            try:
                arrays = self._read(uri)
            except TooShortError as e:
                rows.append((i, "skipped", str(e)))
                continue
            except Exception as e:  # noqa: BLE001 - carried as a row, raised by the driver
                rows.append((i, "error", f"{type(e).__name__}: {e}"))
                continue
            for a in arrays:
                rows.append((i, "ok", ""))
                items.append(a)
        features = np.zeros((len(rows), self.spec.dim), dtype=np.float64)
        ok = [k for k, r in enumerate(rows) if r[1] == "ok"]
        if ok:
            features[ok] = self._features(items)
        return {"source": [r[0] for r in rows], "features": features,
                "status": [r[1] for r in rows], "message": [r[2] for r in rows]}

    def _features(self, items: list[np.ndarray]) -> np.ndarray:
        """Features of items that may differ in size: one network call per distinct shape."""
        out = np.empty((len(items), self.spec.dim), dtype=np.float64)
        by_shape: dict[tuple, list[int]] = {}
        for i, a in enumerate(items):
            by_shape.setdefault(a.shape, []).append(i)
        for idx in by_shape.values():
            out[idx] = self.net.features(np.stack([items[i] for i in idx]))
        return out


class _FeatureActor:
    """Ray Data actor: a `FeatureExtractor` per actor, rows of URIs in, feature rows out."""

    def __init__(self, spec: dict, use_gpu: bool):
        device = actor_device(use_gpu)
        self.extract = FeatureExtractor(FeatureSpec(**spec), device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.extract(batch["uri"].tolist())
        source = np.asarray(out["source"], dtype=np.int64)
        return {
            "group": batch["group"][source],
            "uri": batch["uri"][source],
            "features": out["features"].astype(np.float32),  # what the networks output; summed in float64
            "status": np.asarray(out["status"]),
            "message": np.asarray(out["message"]),
        }


# ---------------------------------------------------------------- per-block statistics

def block_stats(batch: dict[str, np.ndarray], keep: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Rows {group, features [D], status, uri, message, *keep} -> one row per group of the block:
    rows, n, sum [D], sum_outer [D, D] (float64, over the "ok" rows), skipped, problems (JSON list),
    kept (JSON: the `keep` columns' per-row scalars of the "ok" rows, for per-item values).

    An optional bool column `use_features` leaves a row's features out of the sums (a row
    that only carries `keep` values)."""
    groups, status = np.asarray(batch["group"]), np.asarray(batch["status"])
    features = np.asarray(batch["features"])  # [N, D]
    use = np.asarray(batch["use_features"], dtype=bool) if "use_features" in batch else np.ones(len(groups), bool)
    out: dict[str, list] = {k: [] for k in ("group", "rows", "n", "sum", "sum_outer", "skipped", "problems", "kept")}
    for g in sorted(set(groups.tolist())):
        mine = groups == g
        ok = mine & (status == "ok")
        s = FeatureStats.of(features[ok & use])
        bad = mine & (status == "error")
        problems = [f"{u}: {m}" for u, m in zip(np.asarray(batch["uri"])[bad], np.asarray(batch["message"])[bad])]
        kept = {k: np.asarray(batch[k])[ok].tolist() for k in keep}
        for k, v in (("group", g), ("rows", int(mine.sum())), ("n", s.n), ("sum", s.sum), ("sum_outer", s.sum_outer),
                     ("skipped", int((mine & (status == "skipped")).sum())), ("problems", json.dumps(problems)),
                     ("kept", json.dumps(kept))):
            out[k].append(v)
    return {k: np.asarray(v) for k, v in out.items()}


@dataclass
class GroupResult:
    """One collection's merged statistics and what happened computing them."""

    stats: FeatureStats
    computed: int = 0  # rows the workers produced (ok + skipped + error)
    skipped: int = 0
    errors: list[str] = dataclasses.field(default_factory=list)
    blocks: int = 0  # per-block statistics rows merged
    kept: dict[str, list] = dataclasses.field(default_factory=dict)  # `keep` columns, concatenated


def merge_block_rows(rows, dim: int) -> dict[str, GroupResult]:
    """Merge `block_stats` rows per group on the driver (float64 sums add)."""
    merged: dict[str, GroupResult] = {}
    for r in rows:
        g = str(r["group"])
        res = merged.setdefault(g, GroupResult(FeatureStats.empty(dim)))
        res.stats = res.stats.merge(FeatureStats(r["sum"], r["sum_outer"], int(r["n"])))
        problems = json.loads(str(r["problems"]))
        res.skipped += int(r["skipped"])
        res.errors += problems
        res.computed += int(r["rows"])
        res.blocks += 1
        for k, v in json.loads(str(r["kept"])).items():
            res.kept.setdefault(k, []).extend(v)
    return merged


def run_block_stats(ds, dim: int, keep: tuple[str, ...] = (), stats_rows: int = 1024) -> dict[str, GroupResult]:
    """Reduce a dataset of feature rows to per-block statistics, then merge them per group."""
    ds = ds.map_batches(block_stats, fn_kwargs=dict(keep=keep), batch_size=stats_rows, num_cpus=0.5)
    return merge_block_rows(ds.iter_rows(), dim)


def compute_stats(
    groups: dict[str, list[str]],  # group name -> file URIs
    spec: FeatureSpec,
    workers: int = 2,  # actors, each with its own copy of the network
    batch_size: int = 16,  # files per actor call (an integer: GPU stages need one)
    use_gpu: bool = False,  # one GPU per actor; only when asked (num_gpus on a GPU-less cluster hangs)
    stats_rows: int = 1024,  # feature rows reduced to one statistics row per group
) -> dict[str, GroupResult]:
    """Feature statistics of each group of files, through one Ray Data pipeline."""
    import ray

    rows = [{"uri": u, "group": g} for g, uris in groups.items() for u in uris]
    if not rows:
        return {g: GroupResult(FeatureStats.empty(spec.dim)) for g in groups}
    # The driver resolves the file (a missing one fails here, once) and names it to the actors,
    # whose environment ($DEEPLANDSCAPE_WEIGHTS) may differ from the driver's.
    spec = dataclasses.replace(spec, weights_path=str(spec.weights_file()))
    gpu = {"num_gpus": 1} if use_gpu else {}
    ensure_ray()
    ds = ray.data.from_items(rows)
    ds = ds.map_batches(_FeatureActor, fn_constructor_kwargs=dict(spec=dataclasses.asdict(spec), use_gpu=use_gpu),
                        batch_size=batch_size, compute=ray.data.ActorPoolStrategy(size=workers), num_cpus=1, **gpu)
    merged = run_block_stats(ds, spec.dim, stats_rows=stats_rows)
    return {g: merged.get(g, GroupResult(FeatureStats.empty(spec.dim))) for g in groups}


# ---------------------------------------------------------------- collections, cache, saved statistics

@dataclass
class MeanCov:
    """Statistics known only as mu and sigma (a pytorch-fid ``.npz``): usable, not mergeable."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int | None = None

    def mean(self) -> np.ndarray:
        return self.mu

    def cov(self) -> np.ndarray:
        return self.sigma

    @property
    def dim(self) -> int:
        return self.mu.shape[0]


def load_stats_file(uri: str) -> FeatureStats | MeanCov:
    """Our ``.npz`` (sums) or pytorch-fid's (``mu``, ``sigma`` only), local or s3://."""
    with np.load(io.BytesIO(storage.read_bytes(uri))) as f:
        if "sum" in f:
            return FeatureStats(f["sum"], f["sum_outer"], int(f["n"]))
        if "mu" in f and "sigma" in f:
            return MeanCov(f["mu"], f["sigma"])
    raise ValueError(f"{uri} holds neither feature sums nor mu/sigma")


def save_stats(stats: FeatureStats | MeanCov, uri: str) -> None:
    """Write statistics as ``.npz`` (local or s3://): sums, mu and sigma (mu and sigma only
    for statistics that came as such); pytorch-fid's CLI reads either."""
    buf = io.BytesIO()
    if isinstance(stats, FeatureStats):
        np.savez(buf, sum=stats.sum, sum_outer=stats.sum_outer, n=np.int64(stats.n), mu=stats.mean(), sigma=stats.cov())
    else:
        np.savez(buf, mu=stats.mu, sigma=stats.sigma)
    storage.write_bytes(uri, buf.getvalue())


def collection_stats(
    sources: list[str],
    spec: FeatureSpec,
    cache: bool = True,
    **compute_kwargs,  # workers, batch_size, use_gpu, stats_rows: see `compute_stats`
) -> list[tuple[FeatureStats | MeanCov, dict[str, Any]]]:
    """Statistics of each source (folder, s3:// prefix or .npz), with what was done for it.

    Cached sources are loaded; the others are computed together in one pipeline and cached.
    The info dict says: source, kind, files, features, cache ("hit", "miss", "off" or
    "saved-stats"), computed (rows computed now: 0 on a hit), skipped, seconds.
    """
    settings = spec.settings(with_weights=not all(inputs.is_stats_file(src) for src in sources))
    results: list[Any] = [None] * len(sources)
    todo: dict[str, tuple[list[int], list[inputs.FileEntry]]] = {}  # key -> (source indices, files)
    for i, src in enumerate(sources):
        if inputs.is_stats_file(src):
            s = load_stats_file(src)
            results[i] = (s, dict(source=src, kind="saved-stats", files=None, features=s.n, cache="saved-stats",
                                  computed=0, skipped=0, seconds=0.0))
            continue
        entries = inputs.list_entries(src, spec.kind)
        key = inputs.fingerprint(entries, settings)
        hit = stats_cache.load(spec.network, key) if cache else None
        if hit is not None:
            results[i] = (hit, dict(source=src, kind=spec.kind, files=len(entries), features=hit.n, cache="hit",
                                    computed=0, skipped=None, seconds=0.0, cache_entry=stats_cache.entry_uri(spec.network, key)))
        else:  # the same collection twice (A vs A) is computed once
            todo.setdefault(key, ([], entries))[0].append(i)
    if todo:
        start = time.perf_counter()
        computed = compute_stats({key: [e.uri for e in ent] for key, (_, ent) in todo.items()}, spec, **compute_kwargs)
        seconds = time.perf_counter() - start
        errors = [e for key in todo for e in computed[key].errors]
        if errors:
            raise RuntimeError(f"{len(errors)} input files could not be read (nothing was cached); fix or remove "
                               f"them and run again:\n  " + "\n  ".join(errors[:20]))
        for key, (indices, entries) in todo.items():
            res, src = computed[key], sources[indices[0]]
            if res.stats.n < 2:
                raise ValueError(f"{src}: {res.stats.n} {spec.kind} features; a Frechet distance needs at "
                                 f"least 2 (found {len(entries)} files, {res.skipped} skipped as too short)")
            info = dict(source=src, kind=spec.kind, files=len(entries), features=res.stats.n,
                        cache="miss" if cache else "off", computed=res.computed, skipped=res.skipped,
                        blocks=res.blocks, seconds=seconds)
            if cache:
                info["cache_entry"] = stats_cache.save(spec.network, key, res.stats,
                                                       dict(source=src, files=len(entries), settings=settings))
            for i in indices:
                results[i] = (res.stats, {**info, "source": sources[i]})
    for s, info in results:
        if s.dim != spec.dim:
            raise ValueError(f"{info['source']} holds {s.dim}-d statistics; {spec.network} features are {spec.dim}-d")
    return results


# ---------------------------------------------------------------- metrics

@dataclass
class MetricResult:
    """A Frechet distance between two collections and how each side was obtained."""

    metric: str  # "fid" or "fvd"
    value: float
    a: dict[str, Any]
    b: dict[str, Any]
    settings: dict[str, Any]
    stats: tuple[Any, Any]  # (A, B): FeatureStats or MeanCov

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "value": self.value, "a": self.a, "b": self.b, "settings": self.settings}


def frechet_metric(metric: str, a: str, b: str, spec: FeatureSpec, cache: bool = True,
                   **compute_kwargs) -> MetricResult:
    """The Frechet distance between the features of collections `a` and `b`."""
    (sa, ia), (sb, ib) = collection_stats([a, b], spec, cache=cache, **compute_kwargs)
    value = frechet_distance(sa.mean(), sa.cov(), sb.mean(), sb.cov())
    saved_only = inputs.is_stats_file(a) and inputs.is_stats_file(b)
    return MetricResult(metric, value, ia, ib, spec.settings(with_weights=not saved_only), (sa, sb))


def fid(a: str, b: str, resolution: int | None = None, weights_path: str | None = None, cache: bool = True,
        **compute_kwargs) -> MetricResult:
    """FID between two image collections (folders, s3:// prefixes or .npz statistics).

    With `resolution` None the images go to Inception as stored, so two folders give the
    value ``python -m pytorch_fid A B`` gives.
    """
    return frechet_metric("fid", a, b, FeatureSpec("inception", weights_path, resolution), cache, **compute_kwargs)


def fvd(a: str, b: str, clip_len: int = 16, clip_step: int = 1, clips_per_video: int = 1,
        weights_path: str | None = None, cache: bool = True, **compute_kwargs) -> MetricResult:
    """FVD between two video collections (folders, s3:// prefixes or .npz statistics)."""
    spec = FeatureSpec("i3d", weights_path, None, clip_len, clip_step, clips_per_video)
    return frechet_metric("fvd", a, b, spec, cache, **compute_kwargs)
