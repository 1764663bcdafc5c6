"""What Ray Data runs inside its tasks, for `prepare` (prepare.py) and the training streams
(stream.py): decoding, resizing, encoding, pairing, cropping.

Kept free of torch (and of anything importing it): every fresh Ray worker and every
split coordinator imports this module to unpickle a pipeline, and importing torch there cost
~5 s per process on our loaded 2-core machine. Functions named `*_batch`/`decode_*` take a pyarrow
batch and never raise for one bad row: a failure becomes an error row (prepare) or a skipped
row with a warning (stream), because Ray Data aborts the whole job at a task's first
exception (`DataContext.max_errored_blocks` is 0).
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from PIL import Image, UnidentifiedImageError

from deeplandscape.video import iter_frames_from_bytes

FORMATS = ("png", "jpeg")
log = logging.getLogger(__name__)


def column(resolution: int) -> str:
    """Parquet column holding the images at `resolution` px."""
    return f"r{resolution}"


def stable_id(uri: str) -> int:
    """A non-negative int64 from the source URI (same on every run and machine)."""
    return int.from_bytes(hashlib.blake2b(uri.encode(), digest_size=8).digest(), "big") >> 1


# --- images ------------------------------------------------------------------------------------
def square_resize(img: np.ndarray, size: int) -> np.ndarray:
    """Centre square crop, then resize to size x size. [H, W, 3] uint8 -> [size, size, 3]."""
    h, w = img.shape[:2]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    pil = Image.fromarray(img[top : top + s, left : left + s])
    if s != size:
        pil = pil.resize((size, size), Image.Resampling.LANCZOS if s > size else Image.Resampling.BICUBIC)
    return np.asarray(pil)


def box_downsample(img: np.ndarray, factor: int) -> np.ndarray:
    """Mean of each factor x factor block, rounded: [S, S, 3] uint8 -> [S/f, S/f, 3]."""
    if factor == 1:
        return img
    s = img.shape[0] // factor
    blocks = img.reshape(s, factor, s, factor, 3).astype(np.float32)
    return np.round(blocks.mean(axis=(1, 3))).astype(np.uint8)


def pyramid(img: np.ndarray, resolutions: list[int]) -> dict[int, np.ndarray]:
    """{r: [r, r, 3] uint8}: the square-resized top level and box-filtered levels below it."""
    top = max(resolutions)
    level = square_resize(img, top)
    return {r: box_downsample(level, top // r) for r in resolutions}


def encode_image(img: np.ndarray, fmt: str, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    if fmt == "png":
        Image.fromarray(img).save(buf, format="PNG", compress_level=4)
    elif fmt == "jpeg":
        Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    else:
        raise ValueError(f"image format must be one of {FORMATS}, got {fmt!r}")
    return buf.getvalue()


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Encoded bytes -> [H, W, 3] uint8 RGB; ValueError naming the file when unreadable."""
    if not data:
        raise ValueError(f"{name}: empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))
    except UnidentifiedImageError:
        raise ValueError(f"{name}: not an image file (unrecognised format, {len(data)} bytes)") from None
    except (OSError, ValueError, SyntaxError) as e:  # PIL raises all three on damaged files
        raise ValueError(f"{name}: damaged image ({e})") from e


# --- prepare: one source file -> shard rows (a failure becomes a row) --------------------------
def photos_schema(resolutions: list[int]) -> pa.Schema:
    return pa.schema([("photo_id", pa.int64()), ("source", pa.string()), ("error", pa.string()),
                      *[(column(r), pa.binary()) for r in resolutions]])


def clips_schema(resolutions: list[int]) -> pa.Schema:
    return pa.schema([("video_id", pa.int64()), ("clip", pa.int64()), ("source", pa.string()),
                      ("error", pa.string()), ("frame_index", pa.list_(pa.int64())),
                      *[(column(r), pa.list_(pa.binary())) for r in resolutions]])


def photo_row(data: bytes, source: str, resolutions: list[int], fmt: str, quality: int) -> dict[str, Any]:
    """One photos row: the photo at every resolution, or the error and no images."""
    out: dict[str, Any] = {"photo_id": stable_id(source), "source": source, "error": ""}
    try:
        levels = pyramid(decode_image(data, source), resolutions)
        out.update({column(r): encode_image(levels[r], fmt, quality) for r in resolutions})
    except Exception as e:  # noqa: BLE001 - any failure of one file is reported, not fatal
        out["error"] = _reason(e)
        out.update({column(r): b"" for r in resolutions})
    return out


def video_rows(data: bytes, source: str, resolutions: list[int], fmt: str, quality: int,
               clip_frames: int) -> list[dict[str, Any]]:
    """The clips rows of one video, or one row carrying the error."""
    video_id = stable_id(source)
    try:
        if not data:
            raise ValueError("empty file (0 bytes)")
        encoded: dict[int, list[bytes]] = {r: [] for r in resolutions}
        for frame in iter_frames_from_bytes(data, source):  # one decoded frame in memory at a time
            for r, img in pyramid(frame, resolutions).items():
                encoded[r].append(encode_image(img, fmt, quality))
        frames = len(encoded[resolutions[0]])
        if frames < 2:
            raise ValueError(f"{frames} decodable frame(s); real pairs need at least 2")
    except Exception as e:  # noqa: BLE001
        return [{"video_id": video_id, "clip": 0, "source": source, "error": _reason(e), "frame_index": [],
                 **{column(r): [] for r in resolutions}}]
    clips = -(-frames // clip_frames)
    rows = []
    for c in range(clips):
        idx = list(range(c, frames, clips))  # strided: every clip spans the whole video
        rows.append({"video_id": video_id, "clip": c, "source": source, "error": "", "frame_index": idx,
                     **{column(r): [encoded[r][i] for i in idx] for r in resolutions}})
    return rows


def photos_batch(batch: pa.Table, scheme: str, **kw) -> pa.Table:
    """Ray Data batch {bytes, path} -> photos rows, with a fixed schema (no type guessing
    from a block that happens to hold only failures)."""
    rows = [photo_row(r["bytes"], scheme + r["path"], **kw) for r in batch.to_pylist()]
    return pa.Table.from_pylist(rows, schema=photos_schema(kw["resolutions"]))


def videos_batch(batch: pa.Table, scheme: str, **kw) -> pa.Table:
    rows = [out for r in batch.to_pylist() for out in video_rows(r["bytes"], scheme + r["path"], **kw)]
    return pa.Table.from_pylist(rows, schema=clips_schema(kw["resolutions"]))


def _reason(e: Exception) -> str:
    return f"{type(e).__name__}: {e}"


# --- stream: where samples come from -------------------------------------------------------------
@dataclass(frozen=True)
class Source:
    """Photos or videos: prepared shards (`stored` from the manifest) or raw files."""

    uri: str
    prepared: bool
    stored: tuple[int, ...]  # resolutions one can read: the manifest's, or powers of two up to `top`
    top: int  # raw files: the load resolution they are square-resized to first (as in memory)
    images: int = 0  # photos, or video frames, in the shards (0: raw files, not counted)

    def real_resolution(self, r: int) -> int:
        """Stored resolution to read reals at r from: r itself, else the next larger one."""
        larger = [c for c in self.stored if c >= r]
        if not larger:
            raise ValueError(f"{self.uri} holds images up to {max(self.stored)} px, training needs {r} px: "
                             f"prepare again with --resolutions up to {r}")
        return larger[0]

    def window_resolution(self, r: int, fraction: float) -> tuple[int, int]:
        """(stored resolution c, window side at c) for windows of `fraction` of the frame, >= r
        px (the whole frame when fraction is 1)."""
        if fraction >= 1.0:
            c = self.real_resolution(r)
            return c, c
        return self.crop_resolution(r, fraction)

    def crop_resolution(self, r: int, fraction: float) -> tuple[int, int]:
        """(stored resolution c, crop side at c) for crops of `fraction` of the frame, >= r px."""
        for c in self.stored:
            side = int(round(fraction * c))
            if r <= side < c:
                return c, side
        need = int(np.ceil(r / fraction))
        raise ValueError(f"crop sampling at {r} px cuts {fraction:g} of the frame side, so it needs frames of "
                         f"{need} px; {self.uri} holds up to {max(self.stored)} px (prepare again with "
                         f"--resolutions up to {need}, or a smaller train.window)")


def read_shard_files(batch: pa.Table, filesystem: Any, columns: list[str]):
    """Ray Data UDF: {path} -> the rows of those Parquet files, `columns` only, in slices."""
    import pyarrow.parquet as pq

    for path in batch["path"].to_pylist():
        with filesystem.open_input_file(path) as f:
            for rows in pq.ParquetFile(f).iter_batches(batch_size=64, columns=columns):
                yield pa.Table.from_batches([rows])


# --- stream: shard rows or raw files -> decoded, augmented samples (a bad row is skipped) --------
def _chw(img: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(img.transpose(2, 0, 1))  # [H, W, 3] -> [3, H, W]


def _resize_square(img: np.ndarray, size: int) -> np.ndarray:
    """Box filter to size x size: exact block means when the ratio is an integer."""
    if img.shape[0] % size == 0:
        return box_downsample(img, img.shape[0] // size)
    return np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.BOX))


def _skip(what: str, e: Exception) -> None:
    log.warning("skipping %s: %s: %s", what, type(e).__name__, e)


def _shuffled(columns: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The rows of a batch in random order (repeats of one source row are not left side by side)."""
    order = rng.permutation(len(next(iter(columns.values()))))
    return {k: np.ascontiguousarray(v[order]) for k, v in columns.items()}


def _window(frames: list[np.ndarray], side: int, r: int, rng: np.random.Generator) -> np.ndarray:
    """One random side x side window of frames [c, c, 3] (the same place in each), resized to
    r, all flipped alike with p = 0.5 -> [len(frames), 3, r, r]."""
    span = frames[0].shape[0] - side
    top, left = rng.integers(0, span + 1, size=2)
    flip = rng.random() < 0.5
    out = []
    for f in frames:
        x = _resize_square(np.ascontiguousarray(f[top : top + side, left : left + side]), r)
        out.append(_chw(x[:, ::-1] if flip else x))
    return np.stack(out)


def decode_photos(batch: pa.Table, r: int, source: Source, c: int, side: int, col: str,
                  repeat: int) -> dict[str, np.ndarray]:
    """Photos (shard rows or raw files at c px) -> {photo_id, image [B, 3, r, r]}: a random
    window of `side` px (`side == c`: the whole photo), resized to r, flipped with p = 0.5;
    every photo `repeat` times (independent windows and flips)."""
    rng = np.random.default_rng()
    ids, images = [], []
    for row in batch.to_pylist():
        name = row.get("path") or row.get("photo_id")
        try:
            if source.prepared:
                if row["error"]:
                    continue
                img = decode_image(row[col], str(name))
                photo_id = row["photo_id"]
            else:
                img = pyramid(decode_image(row["bytes"], row["path"]), [c, source.top])[c]
                photo_id = stable_id(row["path"])
        except Exception as e:  # noqa: BLE001 - one bad photo must not stop training
            _skip(f"photo {name}", e)
            continue
        for _ in range(repeat):
            images.append(_window([img], side, r, rng)[0])
            ids.append(photo_id)
    return _shuffled({"photo_id": np.asarray(ids, dtype=np.int64),
                      "image": np.stack(images) if images else np.zeros((0, 3, r, r), np.uint8)}, rng)


def _clip_frames(row: dict[str, Any], source: Source, c: int, col: str) -> tuple[int, list[int], list[np.ndarray]]:
    """(video_id, frame indices, frames [c, c, 3]) of one shard clip or one whole raw video."""
    if source.prepared:
        return row["video_id"], row["frame_index"], [decode_image(b, f"video {row['video_id']}") for b in row[col]]
    frames = [pyramid(f, [c, source.top])[c] for f in iter_frames_from_bytes(row["bytes"], row["path"])]
    return stable_id(row["path"]), list(range(len(frames))), frames


def _clip_rows(batch: pa.Table, source: Source, c: int, col: str):
    """(video_id, frame_index, frames) of each usable clip row; rows that the listing marked
    bad are passed over, and a clip that fails to decode is reported and skipped."""
    for row in batch.to_pylist():
        if row.get("error"):
            continue
        try:
            yield _clip_frames(row, source, c, col)
        except Exception as e:  # noqa: BLE001
            _skip(f"video {row.get('path') or row.get('video_id')}", e)


def decode_pairs(batch: pa.Table, r: int, source: Source, c: int, side: int, col: str,
                 repeat: int) -> dict[str, np.ndarray]:
    """Clips -> real pairs: the clip's frames in random order, taken two by two (each frame
    `repeat` times per epoch); both frames of a pair cut at one random window of `side` px
    (`side == c`: the whole frame) and flipped alike."""
    rng = np.random.default_rng()
    vids, idx, images = [], [], []
    for video_id, frame_index, frames in _clip_rows(batch, source, c, col):
        for _ in range(repeat):
            order = rng.permutation(len(frames))
            for a, b in zip(order[0::2], order[1::2]):
                images.append(_window([frames[a], frames[b]], side, r, rng))  # [2, 3, r, r]
                vids.append(video_id)
                idx.append([frame_index[a], frame_index[b]])
    return _shuffled({"video_id": np.asarray(vids, dtype=np.int64),
                      "frame_index": np.asarray(idx, dtype=np.int64).reshape(-1, 2),
                      "image": np.stack(images) if images else np.zeros((0, 2, 3, r, r), np.uint8)}, rng)


def decode_crops(batch: pa.Table, r: int, source: Source, c: int, side: int, col: str,
                 repeat: int, flip: bool = True) -> dict[str, np.ndarray]:
    """Clips -> crop pairs: for every frame (`repeat` times), two crops of `side` px at two
    different places, resized to r, flipped alike with p = 0.5 when `flip` (the stand-in for
    D_pair's fake pair, paper 3.1)."""
    rng = np.random.default_rng()
    vids, idx, boxes, images = [], [], [], []
    span = c - side
    for video_id, frame_index, frames in _clip_rows(batch, source, c, col):
        for f, frame in [(f, x) for f, x in zip(frame_index, frames) for _ in range(repeat)]:
            pos = rng.integers(0, span + 1, size=(2, 2))  # [crop, (top, left)]
            while (pos[0] == pos[1]).all():  # one place twice would be a perfect real pair
                pos[1] = rng.integers(0, span + 1, size=2)
            crops = np.stack([_chw(_resize_square(np.ascontiguousarray(frame[t : t + side, left : left + side]), r))
                              for t, left in pos])
            images.append(crops[..., ::-1] if flip and rng.random() < 0.5 else crops)
            vids.append(video_id)
            idx.append(f)
            boxes.append([[t, left, side] for t, left in pos])
    return _shuffled({"video_id": np.asarray(vids, dtype=np.int64), "frame_index": np.asarray(idx, dtype=np.int64),
                      "box": np.asarray(boxes, dtype=np.int64).reshape(-1, 2, 3),
                      "image": np.stack(images) if images else np.zeros((0, 2, 3, r, r), np.uint8)}, rng)
