"""Lighting change for inverted photos: the network A (paper 3.2, "Lighting manipulation").

Inversion gives styles W, not z, and M cannot be inverted in practice: an inverted photo's
styles lie far from M's image, where an inverse of M returns z of absurd size (docs/RESULTS.md).
So A, a smooth network, learns M's local dynamics:

    A(w_a, z_dyn_b, c) ~ M(z_st_a, sqrt(1 - c) z_dyn_a + sqrt(c) z_dyn_b),   c ~ U(0, 1)

with w_a = M(z_st_a, z_dyn_a); loss L1 + 0.1 (1 - cos(w_b - w_a, A - w_a)) (paper). A is a
stack of residual MLP blocks (10 in the authors' code) predicting an offset from w_a, so it
starts as the identity. It trains on the fly from M (`deeplandscape train-lighting`) until
the loss stops improving, checkpointed in RUN/lighting/.

Over a video, the photo's per-level styles move towards a path of target z_dyn keyframes
(day -> sunset -> night -> morning): each segment goes c = 0 -> 1 towards its keyframe,
starting from where the previous one ended. Only the levels at or above
`invert.lighting_from_resolution` change (the authors apply A to the fine levels).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from deeplandscape import storage
from deeplandscape.config import Config
from deeplandscape.nets.generator import MAPPING_SLOPE, Generator
from deeplandscape.runs import lighting_dir, load_model
from deeplandscape.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from deeplandscape.train.latents import step_generator
from deeplandscape.train.loop import MetricsWriter

KEYFRAME_NAMES = ("day", "sunset", "night", "morning")
PATHS = {"day-to-night": ("sunset", "night"), "cycle": ("sunset", "night", "morning", "day")}



class ResidualBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(F.leaky_relu(self.fc1(F.leaky_relu(x, 0.2)), 0.2))


class LightingNet(nn.Module):
    """A: (w_a [B, w], z_dyn_b [B, z_dyn], c [B]) -> w [B, w].

    A reads M's last pre-activation h = LeakyReLU^-1(w_a) rather than w_a: M ends in a
    LeakyReLU, and its kink hides how z_dyn enters. On a one-layer M, z_dyn is an exact linear
    function of h but only 61% (R^2) of one of w; reading h took A from 0.54 to 0.40 of the
    displacement after the same 3000 steps (docs/RESULTS.md). h is standardised
    with the statistics of M's outputs (`set_w_stats`, kept in the state dict) and the
    predicted offset scaled back with w's per-dimension std: M's outputs are small (std about
    0.2 in a fresh M), which otherwise starves the first layer. The offset is gated by
    sqrt(c), so c = 0 gives w_a back exactly."""

    def __init__(self, w_dim: int, z_dyn_dim: int, blocks: int = 10, width: int | None = None):
        super().__init__()
        width = width or w_dim
        self.inp = nn.Linear(w_dim + z_dyn_dim + 1, width)
        self.blocks = nn.Sequential(*[ResidualBlock(width) for _ in range(blocks)])
        self.out = nn.Linear(width, w_dim)
        nn.init.zeros_(self.out.weight)  # starts as the identity: A(w_a, ., .) = w_a
        nn.init.zeros_(self.out.bias)
        self.register_buffer("h_mean", torch.zeros(w_dim))
        self.register_buffer("h_std", torch.ones(w_dim))
        self.register_buffer("w_std", torch.ones(w_dim))

    @staticmethod
    def pre_activation(w: torch.Tensor) -> torch.Tensor:
        """M's last pre-activation: the inverse of its final LeakyReLU."""
        return torch.where(w > 0, w, w / MAPPING_SLOPE)

    @torch.no_grad()
    def set_w_stats(self, w: torch.Tensor) -> None:
        """Standardise with these samples of M's output [N, w]."""
        h = self.pre_activation(w)
        self.h_mean.copy_(h.mean(0))
        self.h_std.copy_(h.std(0).clamp_min(1e-6))
        self.w_std.copy_(w.std(0).clamp_min(1e-6))

    def forward(self, w_a: torch.Tensor, z_b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        x = torch.cat([(self.pre_activation(w_a) - self.h_mean) / self.h_std, z_b, c[:, None]], dim=1)
        # The offset is gated by sqrt(c), the weight of z_dyn_b in the target: A(w_a, ., 0) = w_a exactly.
        return w_a + c.sqrt()[:, None] * self.out(F.leaky_relu(self.blocks(self.inp(x)), 0.2)) * self.w_std


class DenseResBlock(nn.Module):
    """x + Linear(LeakyReLU(LayerNorm(Linear(x)))): the authors' block (names as in their file)."""

    def __init__(self, width: int):
        super().__init__()
        self.impl = nn.Sequential(nn.Linear(width, width), nn.LayerNorm(width, elementwise_affine=False),
                                  nn.LeakyReLU(0.2), nn.Linear(width, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.impl(x)


class AuthorsLightingNet(nn.Module):
    """The authors' A (`MLPApproximator`, `invert.lighting_arch = "authors"`): residual blocks on
    [w_a, z_dyn_b, c] at width w + z_dyn + 1, then a linear layer to w. Imported with their weights
    (`import-authors`); it can also be trained here."""

    def __init__(self, w_dim: int, z_dyn_dim: int, blocks: int = 10):
        super().__init__()
        width = w_dim + z_dyn_dim + 1
        self.impl = nn.Sequential(*[DenseResBlock(width) for _ in range(blocks)])
        self.out = nn.Linear(width, w_dim)

    def forward(self, w_a: torch.Tensor, z_b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return self.out(self.impl(torch.cat([w_a, z_b, c[:, None]], dim=1)))


def lighting_targets(G: Generator, batch: int, gen: torch.Generator, device) -> tuple[torch.Tensor, ...]:
    """(w_a, z_dyn_b, c, w_target) for one training batch, drawn from M."""
    z_st = torch.randn(batch, G.z_st_dim, generator=gen, device=device)
    z_a, z_b = torch.randn(2, batch, G.cfg.z_dyn_dim, generator=gen, device=device)
    c = torch.rand(batch, generator=gen, device=device)
    with torch.no_grad():
        w_a = G.M(torch.cat([z_st, z_a], dim=1))
        z_mix = (1 - c).sqrt()[:, None] * z_a + c.sqrt()[:, None] * z_b
        target = G.M(torch.cat([z_st, z_mix], dim=1))
    return w_a, z_b, c, target


def lighting_loss(pred: torch.Tensor, target: torch.Tensor, w_a: torch.Tensor) -> torch.Tensor:
    """Paper: L1(w_b, A) + 0.1 (1 - cos(w_b - w_a, A - w_a))."""
    cos = F.cosine_similarity(target - w_a, pred - w_a, dim=1, eps=1e-8)
    return (pred - target).abs().mean() + 0.1 * (1 - cos).mean()


def lighting_step(A: LightingNet, G: Generator, opt: torch.optim.Optimizer, batch: int,
                  gen: torch.Generator) -> torch.Tensor:
    """One optimiser step of A on a fresh batch from M; returns the loss."""
    w_a, z_b, c, target = lighting_targets(G, batch, gen, gen.device)
    loss = lighting_loss(A(w_a, z_b, c), target, w_a)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


def load_weights(A: nn.Module, state: dict[str, torch.Tensor], uri: str) -> None:
    if isinstance(A, LightingNet) and "h_mean" not in state:  # before A read M's pre-activation (2026-12)
        raise ValueError(f"{uri}: this lighting network predates the current A (it reads w, not M's "
                         f"pre-activation); delete its folder and train again with `deeplandscape train-lighting`")
    A.load_state_dict(state)


def build_lighting(cfg: Config) -> nn.Module:
    if cfg.invert.lighting_arch == "authors":
        return AuthorsLightingNet(cfg.model.w_dim, cfg.model.z_dyn_dim, cfg.invert.lighting_blocks)
    return LightingNet(cfg.model.w_dim, cfg.model.z_dyn_dim, cfg.invert.lighting_blocks, cfg.invert.lighting_width)


@torch.no_grad()
def lighting_errors(A: LightingNet, G: Generator, samples: int = 2048, seed: int = 12345) -> dict[str, float]:
    """How well A reproduces M on fresh latents, as mean distances relative to the mean
    displacement |w_b - w_a| (0: exact; 1: as far as not moving at all):
    `identity_error` = |A(w_a, z_b, 0) - w_a|, `target_error` = |A(w_a, z_b, 1) - w_b|,
    `midpoint_error` = |A(w_a, z_b, 0.5) - M(z_st, (z_a + z_b) / sqrt 2)|; and
    `direction_cosine`, the mean cosine between A(w_a, z_b, 1) - w_a and w_b - w_a."""
    device = next(A.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    z_st = torch.randn(samples, G.z_st_dim, generator=gen, device=device)
    z_a, z_b = torch.randn(2, samples, G.cfg.z_dyn_dim, generator=gen, device=device)
    w_a, w_b = G.M(torch.cat([z_st, z_a], 1)), G.M(torch.cat([z_st, z_b], 1))
    w_mid = G.M(torch.cat([z_st, (z_a + z_b) / math.sqrt(2)], 1))
    scale = float((w_b - w_a).norm(dim=1).mean())

    def pred(c: float) -> torch.Tensor:
        return A(w_a, z_b, torch.full((samples,), c, device=device))

    def err(c: float, target: torch.Tensor) -> float:
        return float((pred(c) - target).norm(dim=1).mean()) / scale

    cosine = float(F.cosine_similarity(pred(1.0) - w_a, w_b - w_a, dim=1, eps=1e-8).mean())
    return {"identity_error": err(0.0, w_a), "target_error": err(1.0, w_b), "midpoint_error": err(0.5, w_mid),
            "direction_cosine": cosine}


def train_lighting(cfg: Config, run_dir: str, device: str | torch.device = "cpu", max_steps: int = 0,
                   log=print) -> dict[str, Any]:
    """Train A until its loss stops improving (or `invert.lighting_steps`), resuming from
    RUN/lighting. Returns the report: steps, final loss, whether it converged."""

    iv = cfg.invert
    device = torch.device(device)
    model = load_model(run_dir, device)
    G = model.G.requires_grad_(False)
    A = build_lighting(cfg).to(device)
    opt = torch.optim.Adam(A.parameters(), lr=iv.lighting_lr)
    out = lighting_dir(run_dir)
    step, best, stale = 0, math.inf, 0
    ckpt = latest_checkpoint(out)
    if ckpt is not None:
        state = load_checkpoint(ckpt.uri, map_location=device)[2]
        load_weights(A, state["A"], ckpt.uri)
        if "opt" in state:  # not an imported A (import-authors), which trains on from step 0
            opt.load_state_dict(state["opt"])
            step, best, stale = int(state["counters"][0]), float(state["progress"][0]), int(state["counters"][1])
        log(f"lighting: resumed from {ckpt.uri} (step {step})")
    elif isinstance(A, LightingNet):
        with torch.no_grad():
            gen = torch.Generator(device=device).manual_seed(cfg.train.seed)
            A.set_w_stats(G.M(torch.randn(8192, G.cfg.z_dim, generator=gen, device=device)))
    writer = MetricsWriter(out, step)
    window, tick, steps_here = [], time.perf_counter(), 0
    converged = stale >= iv.lighting_patience
    if converged:
        log(f"lighting: already converged ({stale} loss windows without a 1% gain, patience "
            f"{iv.lighting_patience}); to train on, raise it: --set invert.lighting_patience=N")

    def save() -> None:
        state = {"A": A.state_dict(), "opt": opt.state_dict(), "counters": torch.tensor([step, stale]),
                 "progress": torch.tensor([best], dtype=torch.float64)}
        save_checkpoint(out, cfg, step, step * iv.lighting_batch, state, keep=2)

    while not converged and step < iv.lighting_steps and not (max_steps and steps_here >= max_steps):
        loss = lighting_step(A, G, opt, iv.lighting_batch, step_generator(cfg.train.seed, step, "lighting",
                                                                          device=device))
        step += 1
        steps_here += 1
        window.append(float(loss.detach()))
        if step % iv.lighting_log_every == 0:
            mean = sum(window) / len(window)
            # Converged: the windowed loss has not improved by 1% for `lighting_patience` windows.
            if mean < best * 0.99:
                best, stale = mean, 0
            else:
                stale += 1
            converged = stale >= iv.lighting_patience
            metrics = {"step": step, "loss": mean, "best": best,
                       "steps_per_s": len(window) / max(time.perf_counter() - tick, 1e-9)}
            writer.write(metrics)
            log(f"lighting step {step:6d}  loss {mean:.4f}  (best {best:.4f}, {stale} window(s) without 1% gain)")
            window, tick = [], time.perf_counter()
            if step % (iv.lighting_log_every * 10) == 0:
                save()
    save()
    writer.close()
    report = {"steps": step, "best_loss": best, "converged": converged, **lighting_errors(A, G),
              "stopped_by": "convergence" if converged else ("max_steps" if max_steps and steps_here >= max_steps
                                                              else "lighting_steps")}
    storage.write_text(storage.join(out, "report.json"), json.dumps(report, indent=2))
    keyframes = find_keyframes(model.G, model.resolution, model.alpha, seed=cfg.train.seed)
    storage.write_text(storage.join(out, "keyframes.json"), json.dumps(keyframes, indent=2))
    log(f"lighting: {'converged' if converged else 'stopped (not converged)'} at step {step}, loss {best:.4f}; "
        f"A(w_a, z_b, 1) is {report['target_error']:.2f} of |w_b - w_a| from w_b, "
        f"A(w_a, z_b, 0) {report['identity_error']:.2f} from w_a")
    return report


def load_lighting(run_dir: str, device: str | torch.device = "cpu") -> LightingNet:
    ckpt = latest_checkpoint(lighting_dir(run_dir))
    if ckpt is None:
        raise FileNotFoundError(f"no lighting network under {lighting_dir(run_dir)}/checkpoints: train one with "
                                f"`deeplandscape train-lighting --run-dir {run_dir}`")
    cfg, _, state = load_checkpoint(ckpt.uri, map_location=device)
    A = build_lighting(cfg).to(device)
    load_weights(A, state["A"], ckpt.uri)
    return A.eval().requires_grad_(False)


@torch.no_grad()
def find_keyframes(G: Generator, resolution: int, alpha: float, candidates: int = 64, scenes: int = 8,
                   seed: int = 0) -> dict[str, dict]:
    """Built-in keyframes, measured on the generator itself: among `candidates` z_dyn, each
    rendered over `scenes` random z_st, the brightest is day, the darkest night, the warmest
    (red minus blue) of the middle brightness band sunset, and the brightest of the cooler half
    (other than day) morning."""
    device = next(G.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    z_dyn = torch.randn(candidates, G.cfg.z_dyn_dim, generator=gen, device=device)
    z_st = torch.randn(scenes, G.z_st_dim, generator=gen, device=device)
    S_st = G.make_noise(scenes, resolution, gen, device)
    S_dyn = G.make_noise(scenes, resolution, gen, device)
    luma, warmth = [], []
    for z in z_dyn:
        ws = G.ws_from_z(torch.cat([z_st, z[None].expand(scenes, -1)], dim=1))
        img = (G(ws, S_st, S_dyn if G.cfg.separate_noise else None, resolution, alpha).clamp(-1, 1) + 1) / 2
        r, g, b = img.mean(dim=(0, 2, 3))
        luma.append(float(0.299 * r + 0.587 * g + 0.114 * b))
        warmth.append(float(r - b))
    luma_a, warm_a = np.array(luma), np.array(warmth)
    day, night = int(luma_a.argmax()), int(luma_a.argmin())
    lo, hi = np.quantile(luma_a, [0.25, 0.75])
    middle = [i for i in range(candidates) if lo <= luma_a[i] <= hi and i not in (day, night)]
    sunset = max(middle, key=lambda i: warm_a[i])
    cool = [i for i in range(candidates) if warm_a[i] <= np.median(warm_a) and i not in (day, night, sunset)]
    morning = max(cool, key=lambda i: luma_a[i])
    return {name: {"z_dyn": z_dyn[i].tolist(), "luminance": luma[i], "warmth": warmth[i]}
            for name, i in zip(KEYFRAME_NAMES, (day, sunset, night, morning))}


@dataclass
class LightingPath:
    """Target z_dyn keyframes visited over a video, one segment each."""

    targets: list[torch.Tensor]  # each [z_dyn]
    from_level: int  # levels >= this change

    @torch.no_grad()
    def styles(self, A: LightingNet, ws: torch.Tensor, frames: list[int], total: int) -> torch.Tensor:
        """ws [1, L, w] of the photo -> per-frame styles [len(frames), L, w]."""
        L = ws.shape[1]
        out = ws.expand(len(frames), -1, -1).clone()
        starts = [ws[0, self.from_level :]]  # per segment: the styles it starts from
        for z in self.targets[:-1]:
            prev = starts[-1]
            starts.append(A(prev, z.expand(len(prev), -1), torch.ones(len(prev), device=prev.device)))
        n = len(self.targets)
        for row, f in enumerate(frames):
            t = f / max(total - 1, 1) * n
            k = min(int(t), n - 1)
            c = float(np.clip(t - k, 0, 1))
            c = c * c * (3 - 2 * c)  # smoothstep: no jumps in speed between segments
            prev = starts[k]
            moved = A(prev, self.targets[k].expand(len(prev), -1), torch.full((len(prev),), c, device=prev.device))
            out[row, self.from_level : L] = moved
        return out


def lighting_path(spec: str, keyframes: dict[str, dict], z_dyn_dim: int, from_level: int, seed: int,
                  device) -> LightingPath | None:
    """`none`, `random`, `day-to-night`, `cycle`, or comma-separated keyframe names."""
    if spec == "none":
        return None
    if spec == "random":
        z = torch.randn(z_dyn_dim, generator=torch.Generator().manual_seed(seed))
        return LightingPath([z.to(device)], from_level)
    names = PATHS.get(spec, tuple(spec.split(",")))
    unknown = [n for n in names if n not in keyframes]
    if unknown:
        raise ValueError(f"unknown lighting {spec!r}: keyframes are {sorted(keyframes)}; paths: none, random, "
                         f"{', '.join(PATHS)}, or comma-separated keyframe names")
    for n in names:
        if len(keyframes[n]["z_dyn"]) != z_dyn_dim:
            raise ValueError(f"keyframe {n!r} has {len(keyframes[n]['z_dyn'])} z_dyn values; the model has {z_dyn_dim}")
    return LightingPath([torch.tensor(keyframes[n]["z_dyn"], device=device, dtype=torch.float32) for n in names],
                        from_level)


def load_keyframes(uri: str) -> dict[str, dict]:
    """Keyframes JSON: {"name": {"z_dyn": [...]}} or {"name": [...]}."""
    if not storage.exists(uri):
        raise FileNotFoundError(f"no lighting keyframes at {uri}: `deeplandscape train-lighting` writes them, "
                                "or give your own JSON file of {name: [z_dyn values]}")
    raw = json.loads(storage.read_text(uri))
    out = {}
    for name, value in raw.items():
        z = value["z_dyn"] if isinstance(value, dict) else value
        if not isinstance(z, list) or not all(isinstance(v, (int, float)) for v in z):
            raise ValueError(f"{uri}: keyframe {name!r} must be a list of numbers (z_dyn), got {z!r}")
        out[name] = {"z_dyn": z}
    return out
