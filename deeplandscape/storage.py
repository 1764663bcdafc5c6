"""Local folders and `s3://` URIs behind one small API (pyarrow.fs).

Every file the project reads or writes goes through here, so a run directory or a data
set can live on a laptop disk or in a bucket. An S3-compatible endpoint (MinIO, moto) is
taken from `AWS_ENDPOINT_URL`, which pyarrow honours.
"""

from __future__ import annotations

import io
import os
import time
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import pyarrow.fs as pafs
import torch


def is_remote(uri: str) -> bool:
    return "://" in str(uri) and not str(uri).startswith("file://")


def has_credentials(uri: str) -> bool:
    """True for URIs like `s3://KEY:SECRET@bucket/...` (pyarrow accepts them)."""
    return is_remote(uri) and "@" in urlsplit(str(uri)).netloc


def redact(uri: str) -> str:
    """The URI with any `user:password@` part replaced, safe to print."""
    if not has_credentials(uri):
        return str(uri)
    parts = urlsplit(str(uri))
    return parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]).geturl()


def check_no_credentials(uri: str, what: str) -> None:
    """Refuse credentials inside a URI: they would end up in config.json, logs and Ray's state."""
    if has_credentials(uri):
        raise ValueError(f"{what} {redact(uri)} carries credentials in the URI; give them through the "
                         "environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY), ~/.aws or an instance profile")


def resolve(uri: str | os.PathLike) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it). Local paths are made absolute."""
    uri = str(uri)
    if is_remote(uri):
        # pyarrow parses the whole URI and refuses keys with spaces or other characters a URI
        # must escape ("holiday photos/é.jpg"): parse only scheme://bucket, take the key as is.
        scheme, rest = uri.split("://", 1)
        bucket, sep, key = rest.partition("/")
        fs, root = pafs.FileSystem.from_uri(f"{scheme}://{bucket}")
        return fs, root + sep + key if key else root
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    return pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve())


def absolute(uri: str) -> str:
    """A local path made absolute against this process's working directory (Ray workers run
    elsewhere); a URI, or "", as it is."""
    if not uri or is_remote(uri):
        return uri
    return resolve(uri)[1]


def join(uri: str, *parts: str) -> str:
    return "/".join([str(uri).rstrip("/"), *(p.strip("/") for p in parts)])


def exists(uri: str) -> bool:
    fs, path = resolve(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def makedirs(uri: str) -> None:
    fs, path = resolve(uri)
    fs.create_dir(path, recursive=True)


def read_bytes(uri: str) -> bytes:
    fs, path = resolve(uri)
    try:
        with fs.open_input_stream(path) as f:
            return f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"no such file: {uri}") from None


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole file. Local files go through a temporary name and an atomic rename."""
    fs, path = resolve(uri)
    if isinstance(fs, pafs.LocalFileSystem):
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    else:  # an S3 PUT is atomic already; no folder markers (create_dir would PUT `a/`, `a/b/` ... every time)
        with fs.open_output_stream(path) as f:
            f.write(data)


def read_text(uri: str) -> str:
    return read_bytes(uri).decode("utf-8")


def write_text(uri: str, text: str) -> None:
    write_bytes(uri, text.encode("utf-8"))


def list_files(uri: str, suffixes: tuple[str, ...] = (), recursive: bool = True) -> list[str]:
    """Sorted URIs of the files under `uri` whose names end with one of `suffixes`."""
    fs, path = resolve(uri)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"no such folder: {uri}")
    if info.type == pafs.FileType.File:
        return [str(uri)]
    selector = pafs.FileSelector(path, recursive=recursive)
    found = [i.path for i in fs.get_file_info(selector) if i.type == pafs.FileType.File]
    found = [p for p in found if not suffixes or p.lower().endswith(suffixes)]
    prefix = str(uri).split("://", 1)[0] + "://" if is_remote(uri) else ""
    return sorted(prefix + p for p in found)


def list_dirs(uri: str) -> list[str]:
    """Names (not paths) of the direct sub-folders of `uri`; [] when it does not exist."""
    fs, path = resolve(uri)
    if fs.get_file_info(path).type != pafs.FileType.Directory:
        return []
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=False))
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)


def delete_dir(uri: str) -> None:
    fs, path = resolve(uri)
    fs.delete_dir(path)


def upload_file(local_path: str | os.PathLike, uri: str) -> None:
    """Copy one local file to `uri` (whole-object PUT on S3)."""
    write_bytes(uri, Path(local_path).read_bytes())


def save_tensors(uri: str, obj: dict) -> None:
    """torch.save a dict of tensors/containers; loadable with weights_only=True."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    write_bytes(uri, buf.getvalue())


def load_tensors(uri: str, map_location: str | torch.device = "cpu") -> dict:
    return torch.load(io.BytesIO(read_bytes(uri)), map_location=map_location, weights_only=True)


# --- retries and credential scrubbing (batch jobs over flaky endpoints) -----------------------
SECRET_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


@dataclass(frozen=True)
class Retry:
    """Call a storage function again on I/O errors, waiting first_wait_s, x factor, ... between
    tries (defaults: 5 tries over 15 s, on top of the S3 client's own quick retries). A missing
    file is an answer, not a fault: FileNotFoundError is raised at once."""

    tries: int = 5
    first_wait_s: float = 1.0
    factor: float = 2.0

    def __call__(self, fn: Callable, *args, what: str = "storage call"):
        for attempt in range(1, self.tries + 1):
            try:
                return fn(*args)
            except FileNotFoundError:
                raise
            except OSError as e:
                if attempt == self.tries:
                    raise OSError(f"{what}: gave up after {self.tries} tries: {scrub(str(e))}") from None
                wait = self.first_wait_s * self.factor ** (attempt - 1)
                print(f"storage: {what} failed ({scrub(str(e))[:200]}); retry {attempt}/{self.tries - 1} "
                      f"in {wait:.1f} s", file=sys.stderr, flush=True)
                time.sleep(wait)


def scrub(text: str) -> str:
    """`text` without the values of the AWS credential variables (defence in depth: error
    messages go to logs and manifests)."""
    for name in SECRET_ENV:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return text
