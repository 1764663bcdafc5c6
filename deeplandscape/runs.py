"""A run directory: where everything a run makes lives, and its trained generator.

    RUN/config.json              the resolved config (train)
    RUN/checkpoints/step-N/      G, G_ema, D_st, D_pair and their optimisers (train/checkpoint.py)
    RUN/encoder/checkpoints/     E (train-encoder)
    RUN/lighting/checkpoints/    A and keyframes.json (train-lighting)
    RUN/superres/                pairs/ and checkpoints/ of the SR network (train-superres)
    RUN/samples/, RUN/metrics.jsonl, RUN/evaluation/ ...

Every feature finds these places here, and `load_model` gives the EMA generator of the
latest checkpoint with the resolution and fade-in the run has reached.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch

from deeplandscape import storage
from deeplandscape.config import Config
from deeplandscape.nets.generator import Generator
from deeplandscape.train.checkpoint import latest_checkpoint, load_checkpoint
from deeplandscape.train.schedule import phase_at


def encoder_dir(run_dir: str) -> str:
    return storage.join(run_dir, "encoder")


def lighting_dir(run_dir: str) -> str:
    return storage.join(run_dir, "lighting")


def superres_dir(run_dir: str) -> str:
    return storage.join(run_dir, "superres")


def model_settings(run_dir: str) -> tuple[Config, int]:
    """The run's config and the resolution its latest checkpoint renders at, read from the
    checkpoint's config.json: the driver never loads the weights (the actors do)."""

    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise FileNotFoundError(f"no checkpoint under {run_dir}/checkpoints: train first (deeplandscape train)")
    meta = json.loads(storage.read_text(storage.join(ckpt.uri, "config.json")))
    progress = meta.pop("progress")
    cfg = Config.from_dict(meta)
    return cfg, phase_at(int(progress["images_seen"]), cfg.train, cfg.model.resolution).resolution


@dataclass
class LoadedModel:
    G: Generator  # the EMA generator, eval mode
    cfg: Config
    resolution: int  # the resolution the run has reached
    alpha: float
    kimg: float
    checkpoint: str


def load_model(run_dir: str, device: torch.device | str = "cpu") -> LoadedModel:
    """The EMA generator of the latest checkpoint in a run directory."""
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None:
        raise FileNotFoundError(f"no checkpoint under {run_dir}/checkpoints: train first (deeplandscape train)")
    cfg, progress, state = load_checkpoint(ckpt.uri, map_location=device)
    G = Generator(cfg.model).to(device)
    G.load_state_dict(state["G_ema"])
    phase = phase_at(int(progress["images_seen"]), cfg.train, cfg.model.resolution)
    return LoadedModel(G.eval().requires_grad_(False), cfg, phase.resolution, phase.alpha,
                       progress["images_seen"] / 1000, ckpt.uri)
