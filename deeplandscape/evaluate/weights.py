"""The pretrained files the metrics use, where they live and how to get them.

Every network a metric runs on is loaded from one local file named here; a missing file is
an error (`MissingWeightsError`) that says what to download and where to put it. Nothing
falls back to random weights, and nothing downloads behind the user's back: evaluation
workers often have no internet, so downloading is an explicit step
(`deeplandscape weights fetch NAME`, i.e. `fetch(name)`).

The cache directory is ``$DEEPLANDSCAPE_WEIGHTS`` when set, else
``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``): the directory where
torchvision and pytorch-fid look too, so one download serves all three.

Checksums: torchvision and pytorch-fid name their files ``<stem>-<first hex digits of the
file's sha256>.<ext>``; `verify` checks that prefix, and the full sha256 when the registry
knows it. As in ``torch.hub`` the check runs when a file is fetched and on demand
(`verify`), not on every load (hashing VGG16's 528 MB each time a worker starts costs more
than it protects); loading is strict about keys and shapes, so a wrong file still fails
loudly.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "WeightFile",
    "REGISTRY",
    "MissingWeightsError",
    "WeightsChecksumError",
    "cache_dir",
    "weight_path",
    "verify",
    "sha256_of",
    "status",
    "fetch",
    "load_state_dict",
    "GROUPS",
    "expand",
]

PathLike = str | os.PathLike[str]

# torch.hub's rule for the hash in a file name: "-" then hex digits then "." (first match).
_HASH_IN_NAME = re.compile(r"-([a-f0-9]*)\.")


@dataclass(frozen=True)
class WeightFile:
    """One pretrained file: its cache file name, where to download it and what it is for."""

    name: str  # registry key, as typed on the command line
    filename: str  # file name in the cache directory (the name pytorch-fid/torchvision use)
    url: str
    purpose: str
    sha256: str | None = None  # full digest when known

    @property
    def hash_prefix(self) -> str | None:
        """The sha256 prefix carried in the file name (torchvision / pytorch-fid style)."""
        m = _HASH_IN_NAME.search(self.filename)
        return m.group(1) if m and m.group(1) else None


REGISTRY: dict[str, WeightFile] = {
    w.name: w
    for w in (
        WeightFile(
            name="inception",
            filename="pt_inception-2015-12-05-6726825d.pth",
            # = pytorch_fid.inception.FID_WEIGHTS_URL
            url="https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
            "pt_inception-2015-12-05-6726825d.pth",
            purpose="FID: pytorch-fid's port of the TF Inception-v3 (pool3, 2048-d)",
        ),
        WeightFile(
            name="vgg16",
            filename="vgg16-397923af.pth",
            url="https://download.pytorch.org/models/vgg16-397923af.pth",  # VGG16_Weights.IMAGENET1K_V1
            purpose="LPIPS (net='vgg'): torchvision ImageNet VGG16 backbone",
        ),
        WeightFile(
            name="alexnet",
            filename="alexnet-owt-7be5be79.pth",
            url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",  # AlexNet_Weights.IMAGENET1K_V1
            purpose="LPIPS (net='alex'): torchvision ImageNet AlexNet backbone",
        ),
        *(
            WeightFile(
                name=arch,
                filename=f"{arch}-{digest}.pth",
                url=f"https://download.pytorch.org/models/{arch}-{digest}.pth",  # IMAGENET1K_V1
                purpose=f"inversion encoder E (invert.encoder_backbone={arch!r}): torchvision ImageNet backbone",
            )
            for arch, digest in (("resnet18", "f37072fd"), ("resnet34", "b627a593"), ("resnet50", "0676ba61"),
                                 ("resnet101", "63fe2227"), ("resnet152", "394f9c45"))
        ),
        *(
            WeightFile(
                name=f"ade20k-{part}",
                filename=f"ade20k-resnet50dilated-ppm_deepsup-{part}_epoch_20.pth",
                url=f"http://sceneparsing.csail.mit.edu/model/pytorch/ade20k-resnet50dilated-ppm_deepsup/"
                f"{part}_epoch_20.pth",
                purpose=f"sky/water masks: CSAIL ADE20K resnet50dilated + ppm_deepsup, the {part} "
                "(the authors' segmentation)",
                sha256=None,  # unpublished: the file is checked by its keys and shapes when loaded
            )
            for part in ("encoder", "decoder")
        ),
        WeightFile(
            name="i3d",
            filename="i3d_torchscript.pt",
            url="https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",
            purpose="FVD: I3D Kinetics-400 TorchScript (StyleGAN-V port of the TF-Hub model)",
            sha256=None,  # unpublished: the file is used unchecked
        ),
    )
}


# Names that stand for several files (`deeplandscape weights fetch ade20k`).
GROUPS: dict[str, tuple[str, ...]] = {"ade20k": ("ade20k-encoder", "ade20k-decoder")}


def expand(names: list[str]) -> list[str]:
    """Registry names, with each group name replaced by its files."""
    return [n for name in names for n in GROUPS.get(name, (name,))]


class MissingWeightsError(FileNotFoundError):
    """A pretrained file a metric needs is not in the cache."""


class WeightsChecksumError(ValueError):
    """A pretrained file's sha256 does not match the registry."""


def _entry(name: str) -> WeightFile:
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown weights {name!r}; known: {', '.join(REGISTRY)}") from None


def cache_dir() -> Path:
    """``$DEEPLANDSCAPE_WEIGHTS``, else ``torch.hub.get_dir()/checkpoints`` (read at each call),
    absolute: Ray workers, which get the files' paths from the driver, run in other folders."""
    env = os.environ.get("DEEPLANDSCAPE_WEIGHTS")
    return (Path(env).expanduser() if env else Path(torch.hub.get_dir()) / "checkpoints").resolve()


def _missing_message(w: WeightFile, path: Path) -> str:
    return (
        f"pretrained weights {w.name!r} ({w.purpose}) are missing: expected the file "
        f"{w.filename} at {path}. Download it with `deeplandscape weights fetch "
        f"{next((g for g, files in GROUPS.items() if w.name in files), w.name)}`, "
        f"or fetch {w.url} by hand and save it under that name (set $DEEPLANDSCAPE_WEIGHTS "
        f"to use another directory)."
    )


def weight_path(name: str) -> Path:
    """The local path of the registered file `name`; raises `MissingWeightsError` if absent."""
    w = _entry(name)
    path = cache_dir() / w.filename
    if not path.is_file():
        raise MissingWeightsError(_missing_message(w, path))
    return path


def sha256_of(path: PathLike, chunk_bytes: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(chunk_bytes):
            h.update(chunk)
    return h.hexdigest()


def verify(name: str, path: PathLike | None = None) -> str:
    """Check the file's sha256 against the registry; returns the digest.

    Checks the full digest when known, else the prefix in the registered file name; a file
    with neither (I3D) is only hashed. Raises `WeightsChecksumError` on a mismatch and
    `MissingWeightsError` when the file does not exist.
    """
    w = _entry(name)
    path = Path(path) if path is not None else weight_path(name)
    if not path.is_file():
        raise MissingWeightsError(_missing_message(w, path))
    digest = sha256_of(path)
    expected = w.sha256 or w.hash_prefix
    if expected is not None and not digest.startswith(expected):
        raise WeightsChecksumError(
            f"{path} is not the {w.name!r} weights: sha256 {digest} does not start with "
            f"{expected}. Delete it and run `deeplandscape weights fetch {w.name}`."
        )
    return digest


def status() -> list[dict]:
    """One row per registered file: name, filename, present, path, size_bytes, url, purpose."""
    rows = []
    for w in REGISTRY.values():
        path = cache_dir() / w.filename
        present = path.is_file()
        rows.append(
            dict(
                name=w.name,
                filename=w.filename,
                present=present,
                path=str(path),
                size_bytes=path.stat().st_size if present else None,
                url=w.url,
                purpose=w.purpose,
            )
        )
    return rows


def fetch(name: str, force: bool = False, url: str | None = None) -> Path:
    """Download `name` into the cache (checked against its hash) and return its path.

    A file already present and passing `verify` is kept unless `force`. The download goes
    through ``torch.hub.download_url_to_file``, which writes a temporary file and moves it
    into place only when the hash prefix matches. `url` replaces the registry's (a mirror);
    the file is checked against the registry's hash all the same.
    """
    w = _entry(name)
    url = url or w.url
    path = cache_dir() / w.filename
    if path.is_file() and not force:
        verify(name, path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(path), hash_prefix=w.sha256 or w.hash_prefix)
    except Exception as e:  # URLError offline, RuntimeError on a hash mismatch, HTTP errors
        raise RuntimeError(
            f"could not download {w.name!r} from {url} to {path}: {e}. On a machine without "
            f"internet, download the file elsewhere and copy it to {path}."
        ) from e
    verify(name, path)
    return path


def load_state_dict(name: str, path: PathLike | None = None) -> dict[str, torch.Tensor]:
    """Tensors of the registered file `name` (or of `path`, an explicit override), on the CPU.

    ``weights_only=True``: these files hold tensors, never code.
    """
    w = _entry(name)
    if path is None:
        path = weight_path(name)
    elif not Path(path).is_file():
        raise MissingWeightsError(_missing_message(w, Path(path)))
    return torch.load(path, map_location="cpu", weights_only=True)
