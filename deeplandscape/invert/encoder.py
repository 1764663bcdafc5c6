"""Step 1 of inversion: the encoder E that predicts the per-level styles W' of a photo.

Paper 3.2: a ResNet (ResNet-152 in the paper) whose layer1, layer3 and layer4 features are
global-average-pooled, concatenated and mapped by a two-layer MLP with ReLU to one w per
level. It is trained with L1 on W against images G draws on the fly (the authors dumped
200k of them first; sampling on the fly needs no disk and never repeats an image).

Training runs under Ray Train like the GAN (`deeplandscape train-encoder`), checkpointed in
RUN/encoder/checkpoints and resumed from there. Every worker draws the whole global batch
from generators seeded by (seed, step) and keeps its slice, as the GAN trainer does.
"""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from deeplandscape import storage
from deeplandscape.config import Config
from deeplandscape.evaluate import weights
from deeplandscape.invert.masks import IMAGENET_MEAN, IMAGENET_STD
from deeplandscape.nets.generator import Generator, level_of
from deeplandscape.raykit import run_ray_trainer
from deeplandscape.runs import encoder_dir, load_model
from deeplandscape.train.checkpoint import latest_checkpoint, load_checkpoint, resume_latest, save_checkpoint
from deeplandscape.train.latents import generate, latents_ws, sample_latents, step_generator
from deeplandscape.train.launch import ray_worker_context
from deeplandscape.train.loop import MetricsWriter, WorkerContext, all_reduce_gradients

FEATURE_LAYERS = ("layer1", "layer3", "layer4")  # the authors' code



def _out_channels(layer: nn.Module) -> int:
    return [m for m in layer.modules() if isinstance(m, nn.BatchNorm2d)][-1].num_features


class Encoder(nn.Module):
    """E: image [B, 3, R, R] in [-1, 1] -> styles [B, num_levels, w_dim], as offsets from mean w."""

    def __init__(self, backbone: str, num_levels: int, w_dim: int, hidden: int, pretrained: bool = False,
                 head: str = "mlp"):
        super().__init__()
        if not hasattr(torchvision.models, backbone):
            raise ValueError(f"invert.encoder_backbone {backbone!r} is not a torchvision model")
        net = getattr(torchvision.models, backbone)(weights=None)
        if pretrained:

            net.load_state_dict(weights.load_state_dict(backbone))  # clear error when the file is absent
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        features = sum(_out_channels(getattr(self, name)) for name in FEATURE_LAYERS)
        self.num_levels, self.w_dim, self.head = num_levels, w_dim, head
        if head == "authors":  # their released encoders' head (invert.encoder_head)
            self.mlp = nn.Sequential(nn.Linear(features, hidden), nn.LayerNorm(hidden), nn.LeakyReLU(0.2),
                                     nn.Linear(hidden, num_levels * w_dim))
        else:
            self.mlp = nn.Sequential(nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, num_levels * w_dim))
        self.register_buffer("w_avg", torch.zeros(w_dim))
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = ((images + 1) / 2 - self.mean) / self.std
        x = self.stem(x)
        pooled = []
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(self, name)(x)
            if name in FEATURE_LAYERS:
                pooled.append(x.mean(dim=(2, 3)))
        out = self.mlp(torch.cat(pooled, dim=1))
        out = out.view(-1, self.num_levels, self.w_dim)
        return out if self.head == "authors" else out + self.w_avg  # theirs predicts w itself


def build_encoder(cfg: Config, pretrained: bool | None = None) -> Encoder:
    iv = cfg.invert
    return Encoder(iv.encoder_backbone, level_of(cfg.model.resolution) + 1, cfg.model.w_dim, iv.encoder_hidden,
                   iv.encoder_pretrained if pretrained is None else pretrained, iv.encoder_head)


@torch.no_grad()
def mean_w(G: Generator, samples: int = 4096, seed: int = 0) -> torch.Tensor:
    """The average of M(z) over unit-normal z: the start of MO / I2S and E's output offset."""
    device = next(G.parameters()).device
    z = torch.randn(samples, G.cfg.z_dim, generator=torch.Generator(device=device).manual_seed(seed), device=device)
    return G.M(z).mean(dim=0)


def encoder_checkpoint(run_dir: str):
    """The latest encoder checkpoint of a run; a missing one is an error that says how to make it."""
    ckpt = latest_checkpoint(encoder_dir(run_dir))
    if ckpt is None:
        raise FileNotFoundError(f"no encoder under {encoder_dir(run_dir)}/checkpoints: train one first with "
                                f"`deeplandscape train-encoder --run-dir {run_dir}` (or use --method MO / I2S)")
    return ckpt


def load_encoder(run_dir: str, device: torch.device | str = "cpu") -> Encoder:
    """The latest encoder checkpoint of a run, in eval mode."""
    ckpt = encoder_checkpoint(run_dir)
    cfg, _, state = load_checkpoint(ckpt.uri, map_location=device)
    E = build_encoder(cfg, pretrained=False).to(device)  # every weight comes from the checkpoint
    E.load_state_dict(state["E"])
    return E.eval().requires_grad_(False)


class EncoderTrainer:
    """E, its optimiser and progress on one worker; `train_step` runs one iteration."""

    def __init__(self, cfg: Config, G: Generator, resolution: int, alpha: float, ctx: WorkerContext):
        self.cfg, self.G, self.resolution, self.alpha, self.ctx = cfg, G, resolution, alpha, ctx
        self.E = build_encoder(cfg).to(ctx.device)
        self.E.w_avg.copy_(mean_w(G, seed=cfg.train.seed))
        self.opt = torch.optim.Adam(self.E.parameters(), lr=cfg.invert.encoder_lr)
        self.step = 0
        self.images_seen = 0

    def state_dict(self) -> dict[str, Any]:
        return {"E": self.E.state_dict(), "opt": self.opt.state_dict(),
                "counters": torch.tensor([self.step, self.images_seen])}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.E.load_state_dict(state["E"])
        if "opt" not in state:  # an imported encoder (import-authors): fine-tune it from step 0
            return
        self.opt.load_state_dict(state["opt"])
        self.step, self.images_seen = (int(v) for v in state["counters"])

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This worker's slice of the step's images and their target styles."""
        iv, world, rank = self.cfg.invert, self.ctx.world_size, self.ctx.rank
        gen = step_generator(self.cfg.train.seed, self.step, "encoder", device=self.ctx.device)
        lat = sample_latents(self.G, iv.encoder_batch, 1, self.resolution, iv.encoder_mixing_prob, gen, self.ctx.device)
        per = -(-iv.encoder_batch // world)
        lat = lat.select(slice(rank * per, min(iv.encoder_batch, (rank + 1) * per)))
        for name in ("z_st", "z_dyn", "mix_z_st", "mix_z_dyn"):  # the authors scale z by 3
            setattr(lat, name, getattr(lat, name) * iv.encoder_z_scale)
        with torch.no_grad():
            ws = latents_ws(self.G, lat)  # [b, L, w]
            images = generate(self.G, lat, self.resolution, self.alpha)[:, 0]
        return images, ws

    def train_step(self) -> dict[str, float]:
        images, ws = self.batch()
        used = level_of(self.resolution) + 1  # levels beyond the run's resolution never reach an image
        self.E.train()
        loss = F.l1_loss(self.E(images)[:, :used], ws[:, :used])
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        all_reduce_gradients(self.E, self.ctx.world_size)
        self.opt.step()
        self.step += 1
        self.images_seen += self.cfg.invert.encoder_batch
        return {"E_l1": float(loss.detach())}


def run_encoder_worker(cfg: Config, run_dir: str, ctx: WorkerContext | None = None,
                       max_steps: int = 0) -> EncoderTrainer:
    """Train E until `invert.encoder_kimg` (or `max_steps` in this call), resuming from
    RUN/encoder. G is the run's latest EMA generator; rank 0 alone writes."""

    ctx = ctx or WorkerContext()
    model = load_model(run_dir, ctx.device)
    out_dir = encoder_dir(run_dir)
    trainer = EncoderTrainer(cfg, model.G, model.resolution, model.alpha, ctx)
    if resume_latest(out_dir, trainer, ctx.device, ctx.log if ctx.rank == 0 else None, "encoder") is None \
            and ctx.rank == 0:
        ctx.log(f"encoder: {cfg.invert.encoder_backbone} on {model.resolution} px samples of {model.checkpoint}")
    iv = cfg.invert
    writer = MetricsWriter(out_dir, trainer.step) if ctx.rank == 0 else None
    total, every = int(iv.encoder_kimg * 1000), int(iv.encoder_checkpoint_kimg * 1000)
    steps, window, tick, last_saved = 0, [], time.perf_counter(), trainer.step

    def done() -> bool:
        return trainer.images_seen >= total or (max_steps > 0 and steps >= max_steps)

    while not done():
        before = trainer.images_seen
        window.append(trainer.train_step()["E_l1"])
        steps += 1
        if steps % iv.encoder_log_every == 0 or done():
            seconds = time.perf_counter() - tick
            metrics = {"step": trainer.step, "kimg": trainer.images_seen / 1000, "E_l1": sum(window) / len(window),
                       "images_per_s": len(window) * iv.encoder_batch / max(seconds, 1e-9)}
            window, tick = [], time.perf_counter()
            ctx.report(metrics)
            if writer is not None:
                writer.write(metrics)
                ctx.log(f"encoder step {metrics['step']:6d}  kimg {metrics['kimg']:7.2f}  "
                        f"L1(W) {metrics['E_l1']:.4f}  {metrics['images_per_s']:.0f} img/s")
        crossed = every > 0 and before // every != trainer.images_seen // every
        if (crossed or done()) and trainer.step != last_saved:
            if ctx.rank == 0:
                save_checkpoint(out_dir, cfg, trainer.step, trainer.images_seen, trainer.state_dict(), keep=2)
            last_saved = trainer.step
    if writer is not None:
        writer.close()
    return trainer


def _encoder_worker_entry(loop_config: dict[str, Any]) -> None:

    run_encoder_worker(Config.from_dict(loop_config["config"]), loop_config["run_dir"],
                       ray_worker_context("deeplandscape.invert", loop_config), loop_config.get("max_steps", 0))


def train_encoder(cfg: Config, run_dir: str, max_steps: int = 0, log=print):
    """Train E under Ray Train on `scale.workers` workers (resumes from RUN/encoder)."""
    if not storage.is_remote(run_dir):
        run_dir = storage.resolve(run_dir)[1]
    ckpt = latest_checkpoint(encoder_dir(run_dir))
    log(f"encoder: {'resuming from step ' + str(ckpt.step) if ckpt else 'new'} in {encoder_dir(run_dir)}; "
        f"{cfg.invert.encoder_kimg:g} kimg, batch {cfg.invert.encoder_batch}, {cfg.scale.workers} worker(s)")
    return run_ray_trainer(_encoder_worker_entry, {"config": cfg.to_dict(), "run_dir": run_dir, "max_steps": max_steps},
                           cfg, storage.join(encoder_dir(run_dir), "ray"), "ray-train-encoder", what="train-encoder", log=log)
