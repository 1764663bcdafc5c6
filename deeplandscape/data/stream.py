"""Streaming training input with Ray Data: shards (or raw folders) -> each worker's batches.

`data.source` picks how a worker gets its real images:

    memory   `TrainingData`: everything decoded into RAM once, batches drawn from generators
             seeded by (seed, step). Exact resume, N workers == 1 worker. For data that fits.
    stream   this module: Ray Data reads `deeplandscape prepare` shards (or raw photo and video
             folders) from a folder or s3://, shuffles, augments and decodes on the cluster's
             CPUs, and Ray Train hands each worker its part (`get_dataset_shard`). Scales to
             buckets larger than memory; NOT bit-reproducible (resume continues with other
             batches than an uninterrupted run would have drawn).
    auto     stream when data.images (or data.videos) holds prepared shards, else memory.

Per phase resolution r the driver builds three lazy datasets, passed to
`TorchTrainer(datasets=training_datasets(cfg))`; Ray Train splits each over the workers:

    photos_r  real photos, for D_st              photo_id, image [3, r, r] uint8 (flipped or not)
    pairs_r   two frames of ONE video, for D_pair  video_id, frame_index [2], image [2, 3, r, r]
    crops_r   two crops of ONE frame (crop sampling, paper 3.1)
                                                  video_id, frame_index, box [2, 3], image [2, 3, r, r]

A worker opens a stream the first time it needs it, so at a phase change it moves on to the
next resolution's datasets. Every real is a random window of the frame (`training.Windows`, as
in memory), cut from the smallest stored frame on which the window is at least r px and
resized to r (the whole frame, for runs made before `train.window`: the stored column r, or
box-filtered from the next larger one).
Every rank consumes the same streams at the same steps (the discriminator choice and the crop
coin are shared), which `streaming_split` needs; it gives every rank equal rows per epoch.

`StreamingData` offers the trainer the methods of `TrainingData` (`sample_images`,
`sample_pairs`, `sample_crop_pairs`); the generator it receives is unused and the global batch
size with this worker's slice only fix how many rows it takes. What runs inside Ray Data's tasks
(decoding, flips, pairs, crops) is in `transforms.py`.
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from deeplandscape import storage
from deeplandscape.config import Config
from deeplandscape.data.prepare import load_manifest, task_filesystem
from deeplandscape.data.synth import is_mask_file
from deeplandscape.data.training import PHOTO_SUFFIXES, VIDEO_SUFFIXES, CropPairs, TrainingData, Windows, to_float
from deeplandscape.data.transforms import Source, column, decode_crops, decode_pairs, decode_photos, read_shard_files

SOURCES = ("auto", "memory", "stream")
KINDS = ("photos", "pairs", "crops")


def dataset_name(kind: str, resolution: int) -> str:
    return f"{kind}_{resolution}"


# --- where the data comes from --------------------------------------------------------------
def _raw_levels(top: int) -> tuple[int, ...]:
    return tuple(top >> k for k in range(top.bit_length()) if top >> k >= 4)[::-1]


def open_source(uri: str, load_resolution: int, what: str) -> Source:
    manifest = load_manifest(uri)
    if manifest is None:
        return Source(uri, False, _raw_levels(load_resolution), load_resolution)
    counts = manifest[what]
    if not counts["prepared"]:
        raise ValueError(f"the shards at {uri} hold no {what} ({storage.join(uri, 'manifest.json')})")
    images = counts["prepared"] if what == "photos" else counts["frames"]
    return Source(uri, True, tuple(manifest["resolutions"]), max(manifest["resolutions"]), images)


def resolve_source(cfg: Config) -> str:
    """'memory' or 'stream' for `data.source` (auto: stream when the data are prepared shards)."""
    d = cfg.data
    if d.source not in SOURCES:
        raise ValueError(f"data.source must be one of {SOURCES}, got {d.source!r}")
    prepared = any(load_manifest(u) is not None for u in (d.images, d.videos) if u)
    if d.source == "auto":
        return "stream" if prepared else "memory"
    if d.source == "memory" and prepared:
        raise ValueError(f"data.images/data.videos ({d.images}, {d.videos}) hold prepared shards, which only "
                         "data.source=stream (or auto) reads; point data.images at the raw folders for memory")
    return d.source


def _sources(cfg: Config) -> tuple[Source, Source]:
    d = cfg.data
    load_res = d.load_resolution or 2 * cfg.model.resolution
    videos = d.videos or (d.images if load_manifest(d.images) is not None else "")
    if not d.images or not videos:
        raise ValueError("streaming needs data.images and data.videos (or data.images = a folder of prepared shards "
                         "holding both)")
    return open_source(d.images, load_res, "photos"), open_source(videos, load_res, "videos")


def phase_resolutions(cfg: Config) -> list[int]:
    r, out = cfg.train.start_resolution, []
    while r <= cfg.model.resolution:
        out.append(r)
        r *= 2
    return out


def window_fraction(windows: Windows, load_resolution: int, r: int, crops: bool = False) -> float:
    """A window's side as a fraction of the frame side, exactly as `TrainingData` cuts it."""
    return windows.side(load_resolution, r, windows.crop_fraction if crops else None) / load_resolution


# --- Ray Data: read -------------------------------------------------------------------------
def _fs_paths(uris: list[str]) -> tuple[Any, list[str]]:
    """Filesystem for Ray tasks (see `task_filesystem`) and the paths inside it."""
    fs, _ = task_filesystem(uris[0])
    return fs, [u.split("://", 1)[1] if storage.is_remote(u) else storage.resolve(u)[1] for u in uris]


def _read_shards(uri: str, table: str, columns: list[str], seed: int):
    """One block per Parquet file, in a new random order each epoch, reading only `columns`.

    Not `ray.data.read_parquet`: in Ray 2.60 its (V2) datasource took 4 to 16 s to start each
    execution on our loaded 2-core machine, against 0.1 to 0.5 s for this (ad-hoc timings of
    `take(1)`), and every stream epoch is a new execution.
    """
    import ray.data

    files = storage.list_files(storage.join(uri, table), (".parquet",))
    if not files:
        raise FileNotFoundError(f"no Parquet files under {storage.join(uri, table)}")
    fs, paths = _fs_paths(files)
    ds = ray.data.from_items([{"path": p} for p in paths], override_num_blocks=len(paths))
    return ds.randomize_block_order(seed=seed).map_batches(
        read_shard_files, batch_size=1, batch_format="pyarrow", fn_kwargs=dict(filesystem=fs, columns=columns))


def _read_raw(uri: str, suffixes: tuple[str, ...], seed: int, one_file_per_block: bool):
    import ray.data

    uris = [u for u in storage.list_files(uri, suffixes) if not is_mask_file(u)]
    if not uris:
        raise FileNotFoundError(f"no files ({', '.join(suffixes)}) under {uri}")
    fs, paths = _fs_paths(uris)
    return ray.data.read_binary_files(paths, filesystem=fs, include_paths=True,
                                      shuffle=ray.data.FileShuffleConfig(seed=seed),
                                      override_num_blocks=len(paths) if one_file_per_block else None)


# --- the datasets (driver side) ------------------------------------------------------------------
def repeats(rows_per_pass: int, epoch_rows: int) -> int:
    """Passes over a small data set within one epoch, so that an epoch has >= epoch_rows rows.

    Every epoch is a new Ray Data execution, which costs seconds to start; a data set of a few
    hundred images would otherwise pay that every few steps.
    """
    return max(1, -(-epoch_rows // rows_per_pass)) if rows_per_pass > 0 else 1


def photos_dataset(source: Source, r: int, seed: int, epoch_rows: int = 0, fraction: float = 1.0):
    c, side = source.window_resolution(r, fraction)
    if source.prepared:
        col = column(c)
        ds = _read_shards(source.uri, "photos", ["photo_id", "error", col], seed)
    else:
        ds, col = _read_raw(source.uri, PHOTO_SUFFIXES, seed, one_file_per_block=False), ""
    return ds.map_batches(decode_photos, batch_size=32, batch_format="pyarrow",
                          fn_kwargs=dict(r=r, source=source, c=c, side=side, col=col,
                                         repeat=repeats(source.images, epoch_rows)))


def _clips(source: Source, c: int, seed: int):
    if source.prepared:
        return _read_shards(source.uri, "clips", ["video_id", "error", "frame_index", column(c)], seed)
    return _read_raw(source.uri, VIDEO_SUFFIXES, seed, one_file_per_block=True)


def pairs_dataset(source: Source, r: int, seed: int, epoch_rows: int = 0, fraction: float = 1.0):
    c, side = source.window_resolution(r, fraction)
    return _clips(source, c, seed).map_batches(
        decode_pairs, batch_size=8, batch_format="pyarrow",
        fn_kwargs=dict(r=r, source=source, c=c, side=side, col=column(c),
                       repeat=repeats(source.images // 2, epoch_rows)))


def crops_dataset(source: Source, r: int, fraction: float, seed: int, epoch_rows: int = 0, flip: bool = True):
    c, side = source.crop_resolution(r, fraction)
    return _clips(source, c, seed).map_batches(
        decode_crops, batch_size=8, batch_format="pyarrow",
        fn_kwargs=dict(r=r, source=source, c=c, side=side, col=column(c), repeat=repeats(source.images, epoch_rows),
                       flip=flip))


def training_datasets(cfg: Config) -> dict[str, Any] | None:
    """{name: lazy Ray Dataset} for every phase resolution, or None for the in-memory source.

    Pass it to `TorchTrainer(datasets=...)`; nothing is read until a worker iterates.
    """
    if resolve_source(cfg) != "stream":
        return None
    photos, videos = _sources(cfg)
    load_res = cfg.data.load_resolution or 2 * cfg.model.resolution
    seed, rows, windows = cfg.train.seed, cfg.data.epoch_rows, Windows.of(cfg.train)
    out = {}
    for r in phase_resolutions(cfg):
        fraction = window_fraction(windows, load_res, r)
        out[dataset_name("photos", r)] = photos_dataset(photos, r, seed, rows, fraction)
        out[dataset_name("pairs", r)] = pairs_dataset(videos, r, seed, rows, fraction)
        out[dataset_name("crops", r)] = crops_dataset(videos, r, window_fraction(windows, load_res, r, crops=True),
                                                      seed, rows, windows.flip_crops)
    return out


# --- the worker side ---------------------------------------------------------------------------
class _Stream:
    """Endless batches of one dataset shard: epoch after epoch, full batches only."""

    def __init__(self, name: str, shard, rows: int, shuffle_rows: int):
        if shard is None:
            raise ValueError(f"no dataset shard {name!r}: launch with TorchTrainer(datasets=training_datasets(cfg))")
        self.name, self.shard, self.rows, self.shuffle_rows = name, shard, rows, shuffle_rows
        self._batches = None
        self._fresh = False

    def next(self) -> dict[str, torch.Tensor]:
        while True:
            if self._batches is None:
                self._batches = iter(self.shard.iter_torch_batches(
                    batch_size=self.rows, drop_last=True, device="cpu",
                    local_shuffle_buffer_size=self.shuffle_rows or None))
                self._fresh = True
            batch = next(self._batches, None)
            if batch is not None:
                self._fresh = False
                return batch
            if self._fresh:
                raise ValueError(f"stream {self.name}: one epoch gives this worker fewer than {self.rows} rows "
                                 "(a batch); the data set is too small to stream with this batch and worker "
                                 "count: use data.source=memory")
            self._batches = None  # the next epoch

    def close(self) -> None:
        close = getattr(self._batches, "close", None)
        if close is not None:
            close()
        self._batches = None


class StreamingData:
    """`TrainingData`'s interface over Ray Data streams, one per (kind, resolution)."""

    def __init__(self, get_shard: Callable[[str], Any], shuffle_rows: int, load_resolution: int):
        self.get_shard, self.shuffle_rows = get_shard, shuffle_rows
        self.load_resolution = load_resolution
        self._streams: dict[tuple[str, int], _Stream] = {}

    @classmethod
    def open(cls, cfg: Config) -> "StreamingData":
        """Inside a Ray Train worker: this worker's shards. Elsewhere (one in-process worker):
        the whole datasets, built here."""
        import ray.train

        try:
            ray.train.get_context()
            get_shard = ray.train.get_dataset_shard
        except RuntimeError:  # not under Ray Train
            datasets = training_datasets(cfg)
            get_shard = lambda name: datasets[name].iterator()  # noqa: E731
        load_res = cfg.data.load_resolution or 2 * cfg.model.resolution
        return cls(get_shard, cfg.data.shuffle_rows, load_res)

    def next_batch(self, kind: str, resolution: int, rows: int) -> dict[str, torch.Tensor]:
        """The next `rows` rows of the `kind` stream at `resolution` (opened on first use)."""
        key = (dataset_name(kind, resolution), rows)
        if key not in self._streams:
            self._streams[key] = _Stream(key[0], self.get_shard(key[0]), rows, self.shuffle_rows)
        return self._streams[key].next()

    def close(self) -> None:
        """Stop the open streams (their Ray Data executions end with them)."""
        for stream in self._streams.values():
            stream.close()
        self._streams.clear()

    @staticmethod
    def _rows(n: int, part: slice) -> int:
        return len(range(n)[part])

    def sample_images(self, n: int, resolution: int, gen: torch.Generator | None = None,
                      part: slice = slice(None)) -> torch.Tensor:
        """This worker's rows of a batch of n real photos: [rows, 3, r, r] in [-1, 1]."""
        return to_float(self.next_batch("photos", resolution, self._rows(n, part))["image"])

    def sample_pairs(self, n: int, resolution: int, gen: torch.Generator | None = None,
                     part: slice = slice(None)) -> torch.Tensor:
        """Real pairs, two frames of one video: [rows, 2, 3, r, r] in [-1, 1]."""
        return to_float(self.next_batch("pairs", resolution, self._rows(n, part))["image"])

    def sample_crop_pairs(self, n: int, resolution: int, gen: torch.Generator | None = None,
                          part: slice = slice(None)) -> CropPairs:
        """Two crops of one real frame: images [rows, 2, 3, r, r]; boxes in the source frame's pixels."""
        b = self.next_batch("crops", resolution, self._rows(n, part))
        return CropPairs(to_float(b["image"]), torch.stack([b["video_id"], b["frame_index"]], dim=1), b["box"])


def open_training_data(cfg: Config, log: Callable[[str], None] | None = None) -> TrainingData | StreamingData:
    """The data source `data.source` selects (see the module docstring); `log` hears of skipped files."""
    if resolve_source(cfg) == "stream":
        return StreamingData.open(cfg)
    return TrainingData.load(cfg.data.images, cfg.data.videos, cfg.data.load_resolution or 2 * cfg.model.resolution,
                             log, Windows.of(cfg.train))
