"""Sampling the generator's inputs and running G on them, for single frames and pairs.

Paper 3.1: a fake pair shares z_st and S_st; z_dyn and S_dyn are drawn per frame. Style
mixing (StyleGAN, probability 0.9) draws a second latent the same way, and both frames of a
pair cut over at the same level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from deeplandscape.nets.generator import Generator, level_of, mix_styles


def step_generator(seed: int, step: int, stream: str, rank: int = 0,
                   device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded by (seed, step, stream, rank).

    Deriving every draw from the step number makes runs reproducible and resumes exact
    without saving RNG state. The trainer uses rank 0 on every worker: each worker draws the
    whole global batch and keeps its slice, and all agree on the discriminator and crop coin.
    """
    stream_id = int.from_bytes(stream.encode()[:8].ljust(8, b"\0"), "little")
    state = np.random.SeedSequence([seed, step, stream_id, rank]).generate_state(2, dtype=np.uint32)
    gen = torch.Generator(device=device)
    gen.manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)
    return gen


@dataclass
class Latents:
    """Inputs of G for B samples of F frames each (F = 1 for single images, 2 for pairs)."""

    z_st: torch.Tensor  # [B, z_st_dim], shared by the frames of a sample
    z_dyn: torch.Tensor  # [B, F, z_dyn_dim], one per frame
    S_st: list[torch.Tensor]  # per level [B, 1, r, r], shared by the frames
    S_dyn: list[torch.Tensor]  # per level [B, F, r, r], one per frame
    mix_z_st: torch.Tensor  # [B, z_st_dim]: style-mixing second latent
    mix_z_dyn: torch.Tensor  # [B, F, z_dyn_dim]
    cut: torch.Tensor  # [B] levels < cut use the first latent; cut = num_levels: no mixing

    @property
    def frames(self) -> int:
        return self.z_dyn.shape[1]

    def select(self, part: slice) -> "Latents":
        """The samples `part` (a worker's slice of the global batch)."""
        return Latents(self.z_st[part], self.z_dyn[part], [s[part] for s in self.S_st], [s[part] for s in self.S_dyn],
                       self.mix_z_st[part], self.mix_z_dyn[part], self.cut[part])


def sample_latents(G: Generator, batch: int, frames: int, resolution: int, mixing_prob: float,
                   gen: torch.Generator, device: torch.device | str = "cpu") -> Latents:
    z_st_dim, z_dyn_dim = G.z_st_dim, G.cfg.z_dyn_dim
    randn = lambda *shape: torch.randn(*shape, generator=gen, device=device)  # noqa: E731
    S_st = [randn(batch, *s) for s in G.noise_shapes(resolution)]
    S_dyn = [randn(batch, frames, *s[1:]) for s in G.noise_shapes(resolution)]
    top = level_of(resolution)
    mix = torch.rand(batch, generator=gen, device=device) < mixing_prob
    cut = torch.randint(1, max(top, 1) + 1, (batch,), generator=gen, device=device)
    cut = torch.where(mix & (top > 0), cut, torch.full_like(cut, G.num_levels))
    return Latents(
        z_st=randn(batch, z_st_dim), z_dyn=randn(batch, frames, z_dyn_dim), S_st=S_st, S_dyn=S_dyn,
        mix_z_st=randn(batch, z_st_dim), mix_z_dyn=randn(batch, frames, z_dyn_dim), cut=cut,
    )


def latents_ws(G: Generator, lat: Latents) -> torch.Tensor:
    """Per-frame styles [B*F, num_levels, w_dim], frames of one sample adjacent."""
    f = lat.frames
    z = torch.cat([lat.z_st.repeat_interleave(f, 0), lat.z_dyn.flatten(0, 1)], dim=1)
    ws = G.ws_from_z(z)
    if bool((lat.cut < G.num_levels).any()):
        z2 = torch.cat([lat.mix_z_st.repeat_interleave(f, 0), lat.mix_z_dyn.flatten(0, 1)], dim=1)
        ws = mix_styles(ws, G.ws_from_z(z2), lat.cut.repeat_interleave(f, 0))
    return ws


def generate(G: Generator, lat: Latents, resolution: int, alpha: float) -> torch.Tensor:
    """Run G on every frame: [B, F, 3, r, r] in about [-1, 1]."""
    b, f = lat.z_dyn.shape[:2]
    S_st = [s.repeat_interleave(f, 0) for s in lat.S_st]  # [B*F, 1, r, r]
    S_dyn = [s.reshape(b * f, 1, *s.shape[2:]) for s in lat.S_dyn]
    img = G(latents_ws(G, lat), S_st, S_dyn if G.cfg.separate_noise else None, resolution, alpha)
    return img.unflatten(0, (b, f))
