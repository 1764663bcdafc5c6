"""Sampling time-lapse videos from a trained model (paper 3.1, "Sampling videos").

A video keeps z_st and S_st fixed, interpolates z_dyn between two unit-normal samples and
moves S_dyn. Here S_dyn moves by a plain translation (a sub-pixel, wrap-around shift); the
homography animation of the paper is `deeplandscape.animate` territory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image

from deeplandscape.config import Config
from deeplandscape.nets.generator import Generator
from deeplandscape.train.checkpoint import latest_checkpoint, load_checkpoint
from deeplandscape.train.schedule import phase_at
from deeplandscape.video import VideoWriter


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


def shift_maps(S: torch.Tensor, dx: float, dy: float) -> torch.Tensor:
    """Translate maps [N, 1, H, W] by (dx, dy) pixels with wrap-around, sub-pixel exact.

    A Fourier phase shift: an integer shift is exactly torch.roll, and a fractional one
    moves the map continuously, so a video does not jump between pixels.
    """
    h, w = S.shape[-2:]
    ky = torch.fft.fftfreq(h, device=S.device)[:, None]
    kx = torch.fft.fftfreq(w, device=S.device)[None, :]
    phase = torch.exp(-2j * math.pi * (ky * dy + kx * dx))
    return torch.fft.ifft2(torch.fft.fft2(S.double()) * phase).real.to(S.dtype)


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] in [-1, 1] -> [N, H, W, 3] uint8."""
    return images.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


@torch.no_grad()
def render_video(
    G: Generator,
    seed: int,
    frames: int,
    resolution: int,
    alpha: float = 1.0,
    shift_per_frame: tuple[float, float] = (0.01, 0.0),  # S_dyn motion, image widths per frame
    batch: int = 16,  # frames per G forward pass
    device: torch.device | str = "cpu",
) -> Iterator[np.ndarray]:
    """Yield chunks of frames [n, r, r, 3] uint8 of one sampled video."""
    gen = torch.Generator(device=device).manual_seed(seed)
    z_st = torch.randn(1, G.z_st_dim, generator=gen, device=device)
    z_dyn_a, z_dyn_b = torch.randn(2, 1, G.cfg.z_dyn_dim, generator=gen, device=device)
    S_st = G.make_noise(1, resolution, gen, device)
    S_dyn0 = G.make_noise(1, resolution, gen, device)
    for start in range(0, frames, batch):
        idx = range(start, min(frames, start + batch))
        t = torch.tensor([i / max(frames - 1, 1) for i in idx], device=device)[:, None]
        z = torch.cat([z_st.expand(len(idx), -1), torch.lerp(z_dyn_a, z_dyn_b, t)], dim=1)
        S_dyn = [torch.cat([shift_maps(s, i * shift_per_frame[0] * s.shape[-1], i * shift_per_frame[1] * s.shape[-2])
                            for i in idx]) for s in S_dyn0]
        S_st_b = [s.expand(len(idx), -1, -1, -1) for s in S_st]
        img = G(G.ws_from_z(z), S_st_b, S_dyn if G.cfg.separate_noise else None, resolution, alpha)
        yield to_uint8(img)


def upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling [..., H, W, 3] for viewing tiny models."""
    if factor <= 1:
        return frames
    return frames.repeat(factor, axis=-3).repeat(factor, axis=-2)


def write_video(model: LoadedModel, path: Path, seed: int, frames: int, fps: float,
                shift_per_frame: tuple[float, float], scale: int = 1, device: str = "cpu") -> Path:
    size = model.resolution * scale
    with VideoWriter(path, fps=fps, width=size, height=size) as out:
        for chunk in render_video(model.G, seed, frames, model.resolution, model.alpha, shift_per_frame, device=device):
            out.write(upscale(chunk, scale))
    return path


def sample_grid(G: Generator, seeds: list[int], columns: int, resolution: int, alpha: float = 1.0,
                scale: int = 1, device: str = "cpu") -> Image.Image:
    """One row per seed: `columns` frames spread over a short video of that seed."""
    rows = []
    for seed in seeds:
        video = np.concatenate(list(render_video(G, seed, columns, resolution, alpha, (0.05, 0.0), device=device)))
        rows.append(np.concatenate(list(upscale(video, scale)), axis=1))  # [r, columns*r, 3]
    return Image.fromarray(np.concatenate(rows, axis=0))


def write_samples(model: LoadedModel, out_dir: str | Path, videos: int, frames: int, fps: float = 15.0,
                  seed: int = 0, shift_per_frame: tuple[float, float] = (0.01, 0.0), scale: int = 1,
                  device: str = "cpu") -> dict:
    """`videos` mp4s `sample-SEED.mp4` and a `grid.png` of their frames under `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [write_video(model, out / f"sample-{seed + i:04d}.mp4", seed + i, frames, fps, shift_per_frame, scale, device)
             for i in range(videos)]
    grid = sample_grid(model.G, [seed + i for i in range(min(videos, 8))], 6, model.resolution, model.alpha, scale, device)
    grid.save(out / "grid.png")
    return {"videos": [str(p) for p in paths], "grid": str(out / "grid.png"), "resolution": model.resolution,
            "kimg": model.kimg, "checkpoint": model.checkpoint}


def write_training_snapshot(G: Generator, resolution: int, alpha: float, kimg: float, run_dir: str,
                            seeds: int = 6, frames: int = 16) -> None:
    """During training: `samples/grid-KIMG.png` and `samples/video-KIMG.mp4` from G_ema."""
    import tempfile

    from deeplandscape import storage

    device = next(G.parameters()).device
    scale = max(1, 128 // resolution)
    tag = f"{kimg:08.1f}"
    with tempfile.TemporaryDirectory() as tmp:
        grid = sample_grid(G, list(range(seeds)), 6, resolution, alpha, scale, device=device)
        grid.save(f"{tmp}/grid.png")
        model = LoadedModel(G, None, resolution, alpha, kimg, "")  # type: ignore[arg-type]
        write_video(model, Path(tmp) / "video.mp4", 0, frames, 15.0, (0.02, 0.0), scale, device)
        for name, ext in (("grid", "png"), ("video", "mp4")):
            with open(f"{tmp}/{name}.{ext}", "rb") as f:
                storage.write_bytes(storage.join(run_dir, "samples", f"{name}-{tag}.{ext}"), f.read())
