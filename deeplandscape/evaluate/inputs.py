"""What a metric reads: image or video files under a folder or an s3:// prefix, or saved statistics.

A collection is named by one URI: a local folder, an ``s3://`` prefix (through
`deeplandscape.storage`, so ``AWS_ENDPOINT_URL`` works), or a ``.npz`` statistics file.
Listing returns each file with its size and modification time: together with the metric's
settings they make the key under which the collection's feature statistics are cached
(`stats_cache`), so a changed, added or removed file is a cache miss.

Images are read as pytorch-fid's CLI reads them (PIL, ``convert("RGB")``, uint8), with the
same extensions; ``NAME.mask.png`` files (ground-truth masks that `deeplandscape synth`
writes next to its photos) are not images of the collection.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import pyarrow.fs as pafs
from PIL import Image

from deeplandscape import storage

__all__ = [
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
    "MASK_SUFFIX",
    "FileEntry",
    "is_stats_file",
    "list_entries",
    "fingerprint",
    "local_file",
    "read_image",
    "mask_uri_for",
]

# pytorch-fid's IMAGE_EXTENSIONS, so a folder means the same set of images to both.
IMAGE_SUFFIXES = (".bmp", ".jpg", ".jpeg", ".pgm", ".png", ".ppm", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm")
MASK_SUFFIX = ".mask.png"  # = deeplandscape.data.synth.MASK_SUFFIX


@dataclass(frozen=True)
class FileEntry:
    """One input file: where it is and what identifies its content cheaply."""

    uri: str
    size: int  # bytes
    mtime_ns: int  # modification time (local) or last-modified (S3), nanoseconds


def is_stats_file(uri: str) -> bool:
    return str(uri).lower().endswith(".npz")


def _is_mask(name: str) -> bool:
    return name.lower().endswith(MASK_SUFFIX)


def list_entries(uri: str, kind: str) -> list[FileEntry]:
    """The images (`kind` "images") or videos ("videos") under a folder or prefix, sorted.

    Recursive, as `storage.list_files`; masks (``*.mask.png``) are skipped. A single file is
    a collection of one.
    """
    suffixes = {"images": IMAGE_SUFFIXES, "videos": VIDEO_SUFFIXES}[kind]
    fs, path = storage.resolve(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"no such folder or file: {uri}")
    infos = [info] if info.type == pafs.FileType.File else fs.get_file_info(pafs.FileSelector(path, recursive=True))
    prefix = str(uri).split("://", 1)[0] + "://" if storage.is_remote(uri) else ""
    entries = [
        FileEntry(prefix + i.path, int(i.size or 0), int(i.mtime_ns or 0))
        for i in infos
        if i.type == pafs.FileType.File and i.path.lower().endswith(suffixes) and not _is_mask(i.base_name)
    ]
    return sorted(entries, key=lambda e: e.uri)


def fingerprint(entries: list[FileEntry], settings: dict) -> str:
    """sha256 over every file's (uri, size, mtime) and the settings: the statistics cache key."""
    h = hashlib.sha256()
    h.update(json.dumps(settings, sort_keys=True).encode())
    for e in entries:
        h.update(json.dumps(asdict(e)).encode())
    return h.hexdigest()


@contextlib.contextmanager
def local_file(uri: str, suffix: str = "") -> Iterator[Path]:
    """A local path holding the file: the file itself, or a temporary download of a remote one."""
    if not storage.is_remote(uri):
        yield Path(storage.resolve(uri)[1])
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / ("input" + (suffix or Path(uri).suffix))
        path.write_bytes(storage.read_bytes(uri))
        yield path


def read_image(uri: str, resolution: int | None = None) -> np.ndarray:
    """uint8 [H, W, 3] as pytorch-fid's CLI reads it; resized to `resolution` x `resolution`
    with PIL's bicubic filter (antialiased when shrinking) when given and different."""
    with Image.open(io.BytesIO(storage.read_bytes(uri))) as img:
        img = img.convert("RGB")
        if resolution is not None and img.size != (resolution, resolution):
            img = img.resize((resolution, resolution), Image.BICUBIC)
        return np.asarray(img, dtype=np.uint8)


def mask_uri_for(uri: str) -> str:
    """``photos/00000.png -> photos/00000.mask.png`` (the layout `deeplandscape synth` writes)."""
    stem, _ = os.path.splitext(str(uri))
    return stem + MASK_SUFFIX
