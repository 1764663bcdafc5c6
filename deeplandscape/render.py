"""Rendering a generator's videos and frames: the paper's sampling of a video (3.1, "Sampling
videos"), frames to uint8, and frames to files (mp4 with poster, GIF, PNG frames).

A video keeps z_st and S_st fixed, interpolates z_dyn between two unit-normal samples and
moves S_dyn with a homography composed frame by frame (`deeplandscape.animate`). Used by
`sample`, training snapshots, `animate` and the evaluation protocols.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from deeplandscape import storage
from deeplandscape.animate.homography import CLOCK_DIRECTIONS, Motion
from deeplandscape.animate.warp import animate_noise
from deeplandscape.nets.generator import Generator
from deeplandscape.video import VideoWriter


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] in [-1, 1] -> [N, H, W, 3] uint8."""
    return images.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


@dataclass(frozen=True)
class Animation:
    """How S_dyn and z_dyn move over a video."""

    motion: Motion = CLOCK_DIRECTIONS["3h"]  # per-frame homography of S_dyn (animate.homography)
    speed: float = 1.0  # multiplies the motion (x2.5 matches real time-lapses, REFERENCE.md)
    horizon: float = 0.5  # fraction of the height from the top; water below it mirrors the sky
    authors_mode: bool = True  # warp at output resolution and restore mean/std (REFERENCE.md)
    interpolate_z_dyn: bool = True  # z_dyn from one unit-normal sample to another over the video
    z_dyn_path: str = "slerp"  # how: "slerp" (the authors' code), or "linear"


@torch.no_grad()
def render_video(
    G: Generator,
    seed: int,  # draws z_st, S_st, the two z_dyn and S_dyn of frame 0
    frames: int,
    resolution: int,
    alpha: float = 1.0,
    animation: Animation = Animation(),
    batch: int = 16,  # frames per G forward pass
    device: torch.device | str = "cpu",
) -> Iterator[np.ndarray]:
    """Yield chunks of frames [n, r, r, 3] uint8 of one video.

    Paper 3.1: z_st and S_st stay fixed, z_dyn is interpolated between two samples and
    frame i's S_dyn is frame 0's warped by H^i. Frames go through G in batches and are
    yielded as they are made, so memory does not grow with the video's length.
    """
    gen = torch.Generator(device=device).manual_seed(seed)
    z_st = torch.randn(1, G.z_st_dim, generator=gen, device=device)
    z_dyn_a, z_dyn_b = torch.randn(2, 1, G.cfg.z_dyn_dim, generator=gen, device=device)
    S_st = G.make_noise(1, resolution, gen, device)
    S_dyn0 = G.make_noise(1, resolution, gen, device)
    if not animation.interpolate_z_dyn:
        z_dyn_b = z_dyn_a
    for start in range(0, frames, batch):
        idx = range(start, min(frames, start + batch))
        t = torch.tensor([i / max(frames - 1, 1) for i in idx], device=device)[:, None]
        z = torch.cat([z_st.expand(len(idx), -1), interpolate(z_dyn_a, z_dyn_b, t, animation.z_dyn_path)], dim=1)
        S_dyn = animate_noise(S_dyn0, animation.motion, animation.horizon, idx, animation.speed,
                              authors_mode=animation.authors_mode, out_size=resolution)
        S_st_b = [s.expand(len(idx), -1, -1, -1) for s in S_st]
        img = G(G.ws_from_z(z), S_st_b, S_dyn if G.cfg.separate_noise else None, resolution, alpha)
        yield to_uint8(img)


Z_DYN_PATHS = ("slerp", "linear")


def interpolate(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor, path: str = "slerp") -> torch.Tensor:
    """From a [1, D] to b [1, D] at fractions t [n, 1] -> [n, D].

    "slerp" moves along the great circle between the two directions (Shoemake), which keeps
    a Gaussian sample's typical norm where "linear" shrinks it half-way; both end exactly at
    a and b."""
    if path == "linear":
        return torch.lerp(a, b, t)
    if path != "slerp":
        raise ValueError(f"z_dyn path must be one of {Z_DYN_PATHS}, got {path!r}")
    cos = (F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(-1, keepdim=True).clamp(-1.0, 1.0)  # [1, 1]
    omega = torch.acos(cos)
    if float(torch.sin(omega)) < 1e-6:  # (anti)parallel: no unique great circle
        return torch.lerp(a, b, t)
    return (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)


def upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling [..., H, W, 3] for viewing tiny models."""
    if factor <= 1:
        return frames
    return frames.repeat(factor, axis=-3).repeat(factor, axis=-2)


@dataclass
class VideoOutputs:
    """What to write per video besides the mp4."""

    fps: float = 30.0
    crf: int = 18  # H.264 quality: lower is better, 18 is visually lossless
    scale: int = 1  # nearest-neighbour upscaling for viewing tiny models
    poster: bool = True  # NAME.jpg: the first frame
    gif: bool = False  # NAME.gif preview
    png_frames: bool = False  # NAME/00000.png ...


def render_to_file(G: Generator, resolution: int, alpha: float, path: Path, seed: int, frames: int,
                   animation: Animation, outputs: VideoOutputs = VideoOutputs(), device: str = "cpu") -> Path:
    """Render one video to `path` (mp4, H.264 yuv420p), streaming frames to the encoder."""
    size = resolution * outputs.scale
    previews: list[Image.Image] = []
    with VideoWriter(path, fps=outputs.fps, width=size, height=size, crf=outputs.crf) as out:
        for chunk in render_video(G, seed, frames, resolution, alpha, animation, device=device):
            chunk = upscale(chunk, outputs.scale)
            out.write(chunk)
            if outputs.poster and out.frames_written == len(chunk):
                Image.fromarray(chunk[0]).save(path.with_suffix(".jpg"), quality=92)
            if outputs.png_frames:
                folder = path.with_suffix("")
                folder.mkdir(exist_ok=True)
                for k, frame in enumerate(chunk, start=out.frames_written - len(chunk)):
                    Image.fromarray(frame).save(folder / f"{k:05d}.png")
            if outputs.gif:
                previews.extend(Image.fromarray(f) for f in chunk)
    if previews:
        previews[0].save(path.with_suffix(".gif"), save_all=True, append_images=previews[1:],
                         duration=round(1000 / outputs.fps), loop=0)
    return path


def sample_grid(G: Generator, seeds: list[int], columns: int, resolution: int, alpha: float = 1.0,
                scale: int = 1, device: str = "cpu") -> Image.Image:
    """One row per seed: `columns` frames spread over a short video of that seed."""
    animation = Animation(speed=4.0)
    rows = []
    for seed in seeds:
        video = np.concatenate(list(render_video(G, seed, columns, resolution, alpha, animation, device=device)))
        rows.append(np.concatenate(list(upscale(video, scale)), axis=1))  # [r, columns*r, 3]
    return Image.fromarray(np.concatenate(rows, axis=0))


def write_training_snapshot(G: Generator, resolution: int, alpha: float, kimg: float, run_dir: str,
                            seeds: int = 6, frames: int = 16) -> None:
    """During training: `samples/grid-KIMG.png` and `samples/video-KIMG.mp4` from G_ema."""
    device = next(G.parameters()).device
    scale = max(1, 128 // resolution)
    tag = f"{kimg:08.1f}"
    with tempfile.TemporaryDirectory() as tmp:
        grid = sample_grid(G, list(range(seeds)), 6, resolution, alpha, scale, device=device)
        grid.save(f"{tmp}/grid.png")
        render_to_file(G, resolution, alpha, Path(tmp) / "video.mp4", 0, frames, Animation(speed=2.5),
                       VideoOutputs(fps=15.0, scale=scale, poster=False), device)
        for name, ext in (("grid", "png"), ("video", "mp4")):
            with open(f"{tmp}/{name}.{ext}", "rb") as f:
                storage.write_bytes(storage.join(run_dir, "samples", f"{name}-{tag}.{ext}"), f.read())
