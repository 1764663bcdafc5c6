"""Feature statistics of collections, cached under a hash of their inputs and settings.

The key (`inputs.fingerprint`) covers every file's URI, size and modification time, the
network file's sha256 and every setting that changes the features (resolution, clip length,
...). A second evaluation against the same real set loads its statistics instead of
recomputing them; any change to the files or settings is a different key, so a stale entry
is never used. Entries are the `FeatureStats` ``.npz`` files (sums, ``mu`` and ``sigma``:
pytorch-fid reads them too) plus a small JSON that says what they are.

The cache lives in ``$DEEPLANDSCAPE_STATS_CACHE`` (a folder or an s3:// prefix, shared by
a cluster's nodes) or ``~/.cache/deeplandscape/stats``.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from pathlib import Path

from deeplandscape import storage

from .stats import FeatureStats

__all__ = ["cache_root", "entry_uri", "load", "save"]


def cache_root() -> str:
    """``$DEEPLANDSCAPE_STATS_CACHE`` or ``~/.cache/deeplandscape/stats`` (read at each call)."""
    return os.environ.get("DEEPLANDSCAPE_STATS_CACHE") or str(Path.home() / ".cache" / "deeplandscape" / "stats")


def entry_uri(network: str, key: str) -> str:
    return storage.join(cache_root(), f"{network}-{key[:32]}.npz")


def load(network: str, key: str) -> FeatureStats | None:
    """The cached statistics for `key`, or None on a miss."""
    uri = entry_uri(network, key)
    if not storage.exists(uri):
        return None
    return FeatureStats.from_npz(io.BytesIO(storage.read_bytes(uri)))


def save(network: str, key: str, stats: FeatureStats, description: dict) -> str:
    """Store `stats` (and `description` as JSON next to it); returns the entry's URI."""
    uri = entry_uri(network, key)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "stats.npz"
        stats.to_npz(path)
        storage.write_bytes(uri, path.read_bytes())
    storage.write_text(uri[: -len(".npz")] + ".json", json.dumps({"key": key, **description}, indent=1))
    return uri
