"""`deeplandscape import-authors SOURCE --resolution R --run-dir RUN`: the authors' models as a run.

SOURCE is their downloaded `results/` folder or one `.model` file. In the folder:

    checkpoints/<R>/NNNNNN.model            the generator (the newest one there)
    encoders/<R>_resnet/models/best_model.pth    the encoder E     (else --encoder FILE)
    encoders/<R>_mlp/models/best_model.pth       the lighting net A (else --lighting FILE)
    superres/weights/G.pth                  super-resolution, as their repository keeps it (else --superres)

The run directory gets a resolved config (the paper preset for R, with what the files
dictate) and one checkpoint holding G and G_ema only, whose progress puts `load_model` at R px
with alpha 1; E, A and the SR network go where `train-encoder`, `train-lighting` and
`train-superres` put theirs (runs.py). `sample`, `animate`,
`animate-bucket`, `evaluate`, `train-encoder`, `train-lighting` and `train-superres` take it as
they take a trained run; `train` cannot resume it (no discriminators: theirs differ from ours).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import torch

from deeplandscape import storage
from deeplandscape.authors.encoder import read_encoder
from deeplandscape.authors.generator import (G_KEYS, AuthorsFileError, convert_generator, model_config,
                                             read_architecture, read_checkpoint)
from deeplandscape.authors.lighting import read_lighting
from deeplandscape.authors.superres import read_superres
from deeplandscape.config import Config, load_config, preset_names
from deeplandscape.invert.encoder import build_encoder, mean_w
from deeplandscape.invert.lighting import build_lighting, find_keyframes
from deeplandscape.nets.generator import Generator, level_of
from deeplandscape.runs import encoder_dir, lighting_dir, superres_dir
from deeplandscape.superres.nets import RRDBNet
from deeplandscape.train.checkpoint import list_checkpoints, save_checkpoint
from deeplandscape.train.schedule import num_phases, phase_at

IMPORTED_KEY = "imported_from"  # in the checkpoint's state: the file it came from


@dataclass(frozen=True)
class ImportReport:
    source: str
    run_dir: str
    resolution: int
    generators: tuple[str, ...]  # which of theirs became G_ema (and G)
    kept: int  # tensors converted per generator
    dropped: int  # their tensors left out on purpose (blur kernels, levels above R)
    encoder: str | None  # their encoder file, when one was imported
    lighting: str | None  # their lighting network A, when one was imported
    superres: str | None  # their super-resolution file, when its RRDB was imported
    seconds: float


def find_generator(source: str, resolution: int) -> str:
    """The `.model` file to import: SOURCE itself, or the newest `*.model` under
    SOURCE/checkpoints/<resolution>/ (their layout), else the only one anywhere under SOURCE."""
    p = Path(source)
    if p.is_file():
        return str(p)
    if not p.is_dir():
        raise FileNotFoundError(f"{source}: no such file or folder (their downloaded results/ folder or a .model file)")
    number = lambda f: int(re.sub(r"\D", "", f.stem) or -1)  # noqa: E731 - 475000.model -> 475000
    for folder in (p / "checkpoints" / str(resolution), p / str(resolution)):
        found = sorted(folder.glob("*.model"), key=number)
        if found:
            return str(found[-1])
    anywhere = sorted(p.rglob("*.model"))
    if len(anywhere) == 1:
        return str(anywhere[0])
    where = "none" if not anywhere else ", ".join(str(f.relative_to(p)) for f in anywhere[:4])
    raise FileNotFoundError(f"{source}: no checkpoints/{resolution}/NNNNNN.model (their layout) and not one "
                            f"*.model to take instead (found: {where}); name the file itself")


def base_config(resolution: int, config: str | None, overrides: dict[str, str] | None) -> Config:
    name = config or (f"paper{resolution}" if f"paper{resolution}" in preset_names() else "paper256")
    return load_config(name, overrides or {})


def final_images(cfg: Config) -> int:
    """Images seen at the end of the last phase's fade-in: `load_model` gives R px at alpha 1."""
    t = cfg.train
    images = int(((num_phases(t, cfg.model.resolution) - 1) * t.phase_kimg + max(t.fade_kimg, 0)) * 1000)
    phase = phase_at(images, t, cfg.model.resolution)
    assert (phase.resolution, phase.alpha) == (cfg.model.resolution, 1.0), phase
    return images


def _in_folder(source: str, *parts: str) -> str | None:
    """SOURCE/parts... when SOURCE is a folder holding that file (their layout), else None."""
    path = Path(source).joinpath(*parts)
    return str(path) if Path(source).is_dir() and path.is_file() else None


def find_encoder(source: str, resolution: int) -> str | None:
    """Their encoder for `resolution` in their results/ folder, if there."""
    return _in_folder(source, "encoders", f"{resolution}_resnet", "models", "best_model.pth")


def find_lighting(source: str, resolution: int) -> str | None:
    """Their A for `resolution` in their results/ folder, if there."""
    return _in_folder(source, "encoders", f"{resolution}_mlp", "models", "best_model.pth")


def find_superres(source: str) -> str | None:
    """Their SR file where their repository keeps it, if there."""
    return _in_folder(source, "superres", "weights", "G.pth")


def load_strictly(net: torch.nn.Module, tensors: dict[str, torch.Tensor], path: str,
                  own: frozenset[str] = frozenset()) -> None:
    """Every tensor of the net from `tensors` (except the net's `own`, kept as they are) and
    nothing else, or the first key that is not so."""
    target = net.state_dict()
    for key, value in tensors.items():
        if key not in target or target[key].shape != value.shape:
            want = tuple(target[key].shape) if key in target else "no such tensor"
            raise AuthorsFileError(f"{path}: {key!r} {tuple(value.shape)} does not fit ours ({want})")
    missing = [k for k in target if k not in tensors and k not in own]
    if missing:
        raise AuthorsFileError(f"{path}: missing key {missing[0]!r}")
    net.load_state_dict({**target, **tensors})


def import_authors(source: str, resolution: int, run_dir: str, config: str | None = None,
                   overrides: dict[str, str] | None = None, encoder: str | None = None,
                   lighting: str | None = None, superres: str | None = None,
                   log: Callable[[str], None] = print) -> ImportReport:
    """Write `run_dir` from their generator, and their encoder, lighting network and SR network
    (the files named, or found in their folder: module docstring)."""
    start = time.perf_counter()
    path = find_generator(source, resolution)
    encoder = encoder or find_encoder(source, resolution)
    lighting = lighting or find_lighting(source, resolution)
    superres = superres or find_superres(source)
    if list_checkpoints(run_dir):
        raise ValueError(f"{run_dir} already holds checkpoints; import into a new run directory")
    ckpt = read_checkpoint(path)
    names = tuple(k for k in G_KEYS if k in ckpt)
    arch = read_architecture(ckpt[names[0]], ckpt, path)
    cfg = base_config(resolution, config, overrides)
    cfg = replace(cfg, model=model_config(arch, resolution, cfg.model, path))
    converted = {}
    for name in names:
        converted[name], dropped = convert_generator(ckpt[name], cfg.model, path)
    G_ema = converted[names[0]]
    G = None
    if encoder is not None or lighting is not None:  # their EMA generator: E's mean w, A's keyframes
        G = Generator(cfg.model).eval()
        G.load_state_dict(G_ema)
    E = None
    if encoder is not None:
        tensors, backbone, hidden = read_encoder(encoder, cfg.model.w_dim, level_of(resolution) + 1)
        cfg = replace(cfg, invert=replace(cfg.invert, encoder_backbone=backbone, encoder_hidden=hidden,
                                          encoder_head="authors", encoder_pretrained=False))
        E = build_encoder(cfg, pretrained=False)
        load_strictly(E, tensors, encoder, own=ENCODER_OWN)
        E.w_avg.copy_(mean_w(G, seed=cfg.train.seed))  # unused by their head; MO / I2S start from it
    A = None
    if lighting is not None:
        tensors, blocks = read_lighting(lighting, cfg.model.w_dim, cfg.model.z_dyn_dim)
        cfg = replace(cfg, invert=replace(cfg.invert, lighting_arch="authors", lighting_blocks=blocks))
        A = build_lighting(cfg)
        load_strictly(A, tensors, lighting)
    sr, left_out = None, 0
    if superres is not None:
        tensors, (nf, nb, gc), left_out = read_superres(superres)
        cfg = replace(cfg, superres=replace(cfg.superres, nf=nf, nb=nb, gc=gc))
        sr = RRDBNet(nf, nb, gc)
        load_strictly(sr, tensors, superres)
    images = final_images(cfg)
    iteration = ckpt.get("iteration") if isinstance(ckpt.get("iteration"), int) else 0
    storage.write_text(storage.join(run_dir, "config.json"), json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
    save_checkpoint(run_dir, cfg, iteration, images,
                    {"G_ema": G_ema, "G": converted.get("generator", G_ema), IMPORTED_KEY: path})
    if E is not None:
        save_checkpoint(encoder_dir(run_dir), cfg, 0, 0, {"E": E.state_dict(), IMPORTED_KEY: encoder})
    if A is not None:
        save_checkpoint(lighting_dir(run_dir), cfg, 0, 0, {"A": A.state_dict(), IMPORTED_KEY: lighting})
        # Keyframes (day, sunset, night, morning) measured on their generator, as train-lighting does.
        log(f"measuring lighting keyframes on the generator (32 z_dyn x 4 scenes at {resolution} px)")
        keyframes = find_keyframes(G, resolution, 1.0, candidates=32, scenes=4, seed=cfg.train.seed)
        storage.write_text(storage.join(lighting_dir(run_dir), "keyframes.json"), json.dumps(keyframes, indent=2))
    if sr is not None:
        save_checkpoint(superres_dir(run_dir), cfg, 0, 0, {"G_sr": sr.state_dict(), IMPORTED_KEY: superres})
    report = ImportReport(path, run_dir, resolution, names, len(G_ema), len(dropped), encoder, lighting, superres,
                          time.perf_counter() - start)
    log(f"imported {' and '.join(names)} of {path} ({arch.max_resolution} px file, {len(G_ema)} tensors each, "
        f"{len(dropped)} left out: blur kernels and levels above {resolution} px)"
        + (f", the encoder {encoder} ({cfg.invert.encoder_backbone})" if encoder else "")
        + (f", the lighting network {lighting} ({cfg.invert.lighting_blocks} blocks)" if lighting else "")
        + (f", the super-resolution RRDB of {superres} ({cfg.superres.nb} blocks; {left_out} tensors of their "
           f"fusion left out)" if superres else "")
        + f" into {run_dir} in {report.seconds:.1f} s")
    return report


# Our encoder's tensors that are not in theirs: the mean w, ImageNet's statistics.
ENCODER_OWN = frozenset({"w_avg", "mean", "std"})


__all__ = ["AuthorsFileError", "ImportReport", "find_generator", "import_authors"]
