"""`deeplandscape train-superres`: the x4 ESRGAN of paper 3.2 under Ray Train.

Two stages on every worker, one Ray Train run:

1. pairs (`pairs.py`): each worker builds the missing shards of its share of the videos
   (G and E loaded once, frames inverted `invert.batch` at a time); they wait for each other,
   then every worker loads all pairs. A second call finds them all built and skips this.
2. ESRGAN's recipe: `superres.psnr_steps` steps of L1 ("PSNR-oriented"), then
   `superres.gan_steps` steps of perceptual + relativistic-average GAN + L1 with the
   VGG-style discriminator; Adam (0.9, 0.99), the learning rate halved at fixed fractions
   of each stage. Every worker draws the step's whole global batch from generators seeded by
   (seed, step) and keeps its slice; gradients are averaged with one all-reduce per network,
   as in the GAN trainer, so N workers train exactly like one.

Checkpoints (`RUN/superres/checkpoints/step-N/`, tensors only, loaded with weights_only=True),
`metrics.jsonl` and TensorBoard events go to RUN/superres; a re-run resumes from the latest
checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import Any

import torch
import torch.nn.functional as F

from deeplandscape import storage
from deeplandscape.config import Config, SuperResConfig
from deeplandscape.invert.inversion import METHODS
from deeplandscape.raykit import run_ray_trainer
from deeplandscape.runs import encoder_dir, load_model, superres_dir
from deeplandscape.superres.nets import (SCALE, Discriminator, RRDBNet, VGGFeatures, d_ragan_loss, g_ragan_loss,
                                         psnr)
from deeplandscape.superres.pairs import (PAIR_METHODS, PairSet, PairSettings, build_pairs, check_settings,
                                          list_videos)
from deeplandscape.train.checkpoint import latest_checkpoint, resume_latest, save_checkpoint
from deeplandscape.train.latents import step_generator
from deeplandscape.train.launch import check_uris, ray_worker_context
from deeplandscape.train.loop import MetricsWriter, WorkerContext, all_reduce_gradients

# Where each stage halves its learning rate, as fractions of the stage (ESRGAN: PSNR stage
# every 200k of 1M iterations; GAN stage at 50k, 100k, 200k, 300k of 400k).
PSNR_MILESTONES = (0.2, 0.4, 0.6, 0.8)
GAN_MILESTONES = (0.125, 0.25, 0.5, 0.75)


def validate_superres(sr: SuperResConfig) -> None:
    if sr.pair_method not in PAIR_METHODS:
        raise ValueError(f"superres.pair_method must be one of {', '.join(PAIR_METHODS)} (the paper: EO), "
                         f"got {sr.pair_method!r}")
    if sr.hr_patch < 32 or sr.hr_patch % 32:
        raise ValueError(f"superres.hr_patch must be a positive multiple of 32, got {sr.hr_patch}")
    for name in ("frames_per_video", "nf", "nb", "gc", "batch", "d_nf", "log_every", "frames_batch", "max_size"):
        if getattr(sr, name) < 1:
            raise ValueError(f"superres.{name} must be >= 1, got {getattr(sr, name)}")
    for name in ("psnr_steps", "gan_steps", "checkpoint_steps"):
        if getattr(sr, name) < 0:
            raise ValueError(f"superres.{name} must be >= 0, got {getattr(sr, name)}")
    if sr.psnr_steps + sr.gan_steps < 1:
        raise ValueError("superres.psnr_steps + superres.gan_steps must be at least 1")
    if sr.amp not in ("none", "bf16"):
        raise ValueError(f"superres.amp must be 'none' or 'bf16', got {sr.amp!r}")
    if sr.guided_radius < 1 or sr.guided_subsample < 1 or sr.guided_eps <= 0:
        raise ValueError("superres.guided_radius and guided_subsample must be >= 1 and guided_eps > 0")


def build_rrdb(sr: SuperResConfig) -> RRDBNet:
    return RRDBNet(sr.nf, sr.nb, sr.gc)


def stage_lr(sr: SuperResConfig, step: int) -> tuple[str, float]:
    """("psnr" | "gan", learning rate) of the step about to run (0-based)."""
    if step < sr.psnr_steps:
        halvings = sum(step >= f * sr.psnr_steps for f in PSNR_MILESTONES)
        return "psnr", sr.psnr_lr * 0.5**halvings
    k = step - sr.psnr_steps
    halvings = sum(k >= f * sr.gan_steps for f in GAN_MILESTONES)
    return "gan", sr.gan_lr * 0.5**halvings


class SRTrainer:
    """The SR network G_sr, its discriminator D_sr, optimisers and progress on one worker."""

    def __init__(self, cfg: Config, pairs: PairSet, ctx: WorkerContext, log=print):
        self.cfg, self.sr, self.pairs, self.ctx = cfg, cfg.superres, pairs, ctx
        sr = self.sr
        torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank
        self.G_sr = build_rrdb(sr).to(ctx.device)
        if sr.init:
            state = storage.load_tensors(sr.init, map_location=ctx.device)  # weights_only=True
            state = state.get("params", state)  # BasicSR wraps its state dicts in {"params": ...}
            try:
                self.G_sr.load_state_dict(state)
            except RuntimeError as e:
                raise ValueError(f"superres.init {sr.init} is not an RRDBNet state dict with ESRGAN's names "
                                 f"(conv_first, RRDB_trunk.N.RDB1.conv1, ...) and nf={sr.nf}, nb={sr.nb}, "
                                 f"gc={sr.gc}: {str(e)[:300]}") from None
            log(f"superres: G_sr starts from {sr.init}")
        self.D_sr = Discriminator(sr.hr_patch, sr.d_nf).to(ctx.device) if sr.gan_steps > 0 else None
        self.vgg = None
        if sr.gan_steps > 0 and sr.perceptual_weight > 0:
            self.vgg = VGGFeatures().to(ctx.device)  # MissingWeightsError says how to fetch vgg16
        betas = (0.9, 0.99)  # ESRGAN
        self.opt_G = torch.optim.Adam(self.G_sr.parameters(), lr=sr.psnr_lr, betas=betas)
        self.opt_D = torch.optim.Adam(self.D_sr.parameters(), lr=sr.gan_lr, betas=betas) if self.D_sr else None
        self.step = 0
        self.images_seen = 0

    # --- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {"G_sr": self.G_sr.state_dict(), "opt_G": self.opt_G.state_dict(),
                 "counters": torch.tensor([self.step, self.images_seen])}
        if self.D_sr is not None:
            state |= {"D_sr": self.D_sr.state_dict(), "opt_D": self.opt_D.state_dict()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.G_sr.load_state_dict(state["G_sr"])
        if "opt_G" not in state:  # an imported network (import-authors --superres): trains on from step 0
            return
        self.opt_G.load_state_dict(state["opt_G"])
        if self.D_sr is not None and "D_sr" in state:
            self.D_sr.load_state_dict(state["D_sr"])
            self.opt_D.load_state_dict(state["opt_D"])
        self.step, self.images_seen = (int(v) for v in state["counters"])

    @property
    def total_steps(self) -> int:
        return self.sr.psnr_steps + self.sr.gan_steps

    # --- one iteration ------------------------------------------------------------------------
    def autocast(self):
        if self.sr.amp == "bf16" and self.ctx.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """This worker's slice of the step's pairs: (lo [b, 3, p/4, p/4], hi [b, 3, p, p])."""
        sr, world, rank = self.sr, self.ctx.world_size, self.ctx.rank
        gen = step_generator(self.cfg.train.seed, self.step, "superres")
        per = -(-sr.batch // world)
        lo, hi = self.pairs.sample(sr.batch, sr.hr_patch, gen, slice(rank * per, min(sr.batch, (rank + 1) * per)))
        return lo.to(self.ctx.device), hi.to(self.ctx.device)

    def train_step(self) -> dict[str, float]:
        stage, lr = stage_lr(self.sr, self.step)
        for group in self.opt_G.param_groups:
            group["lr"] = lr
        lo, hi = self.batch()
        self.G_sr.train()
        metrics = self.psnr_step(lo, hi) if stage == "psnr" else self.gan_step(lo, hi, lr)
        self.step += 1
        self.images_seen += self.sr.batch
        return {**metrics, "lr": lr}

    def psnr_step(self, lo: torch.Tensor, hi: torch.Tensor) -> dict[str, float]:
        """ESRGAN stage 1: L1 between SR(lo) and hi."""
        with self.autocast():
            out = self.G_sr(lo)
        loss = F.l1_loss(out.float(), hi)
        self.opt_G.zero_grad(set_to_none=True)
        loss.backward()
        all_reduce_gradients(self.G_sr, self.ctx.world_size)
        self.opt_G.step()
        return {"G_l1": float(loss.detach()), "psnr": float(psnr(out.detach().clamp(-1, 1), hi)),
                "psnr_bicubic": float(psnr(upsample_bicubic(lo), hi))}

    def gan_step(self, lo: torch.Tensor, hi: torch.Tensor, lr: float) -> dict[str, float]:
        """ESRGAN stage 2: G step (perceptual + RaGAN + L1), then D step (RaGAN)."""
        sr = self.sr
        for group in self.opt_D.param_groups:
            group["lr"] = lr
        # G step; D's weights are frozen through requires_grad (no DDP wrapper here).
        self.D_sr.requires_grad_(False)
        with self.autocast():
            out = self.G_sr(lo)
            real_logits = self.D_sr(hi).detach().float()
            fake_logits = self.D_sr(out).float()
        l1 = F.l1_loss(out.float(), hi)
        g_gan = g_ragan_loss(real_logits, fake_logits)
        loss = sr.pixel_weight * l1 + sr.gan_weight * g_gan
        metrics = {"G_l1": float(l1.detach()), "G_gan": float(g_gan.detach())}
        if self.vgg is not None:
            with self.autocast():
                perceptual = F.l1_loss(self.vgg(out).float(), self.vgg(hi).float())
            loss = loss + sr.perceptual_weight * perceptual
            metrics["G_perceptual"] = float(perceptual.detach())
        self.opt_G.zero_grad(set_to_none=True)
        loss.backward()
        all_reduce_gradients(self.G_sr, self.ctx.world_size)
        self.opt_G.step()
        # D step on the same batch.
        self.D_sr.requires_grad_(True)
        with self.autocast():
            real_logits = self.D_sr(hi).float()
            fake_logits = self.D_sr(out.detach()).float()
        d_loss = d_ragan_loss(real_logits, fake_logits)
        self.opt_D.zero_grad(set_to_none=True)
        d_loss.backward()
        all_reduce_gradients(self.D_sr, self.ctx.world_size)
        self.opt_D.step()
        return {**metrics, "D_gan": float(d_loss.detach()), "psnr": float(psnr(out.detach().clamp(-1, 1), hi)),
                "psnr_bicubic": float(psnr(upsample_bicubic(lo), hi))}


def upsample_bicubic(lo: torch.Tensor) -> torch.Tensor:
    """The baseline the network should beat: bicubic x4, [-1, 1]."""
    return F.interpolate(lo, scale_factor=SCALE, mode="bicubic", align_corners=False).clamp(-1, 1)


def _barrier(ctx: WorkerContext) -> None:
    import torch.distributed as dist

    if ctx.world_size > 1 and dist.is_initialized():
        dist.barrier()


def _mean_over_workers(metrics: dict[str, float], ctx: WorkerContext) -> dict[str, float]:
    import torch.distributed as dist

    if ctx.world_size <= 1 or not dist.is_initialized():
        return metrics
    keys = sorted(metrics)
    values = torch.tensor([metrics[k] for k in keys], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(values)
    return {k: v / ctx.world_size for k, v in zip(keys, values.tolist())}


def run_superres_worker(cfg: Config, run_dir: str, videos: list[str], ctx: WorkerContext | None = None,
                        max_steps: int = 0) -> SRTrainer:
    """Build this worker's missing pairs, then train G_sr until psnr_steps + gan_steps (or
    `max_steps` in this call), resuming from RUN/superres. Rank 0 alone writes checkpoints."""
    ctx = ctx or WorkerContext()
    sr = cfg.superres
    out_dir = superres_dir(run_dir)
    t0 = time.perf_counter()
    made = build_pairs(cfg, run_dir, videos, ctx.rank, ctx.world_size, ctx.device, log=ctx.log)
    _barrier(ctx)  # every shard is written before anyone loads them
    pairs = PairSet.load(run_dir, videos)
    if ctx.rank == 0:
        built = f"built {made} pair(s) on this worker in {time.perf_counter() - t0:.1f} s, " if made else ""
        ctx.log(f"superres: {built}{len(pairs)} pairs ({pairs.lo.shape[-1]} -> {pairs.hi.shape[-1]} px) "
                f"from {len(videos)} video(s)")
    trainer = SRTrainer(cfg, pairs, ctx, log=ctx.log)
    if resume_latest(out_dir, trainer, ctx.device, ctx.log if ctx.rank == 0 else None, "superres") is None \
            and ctx.rank == 0:
        ctx.log(f"superres: new RRDBNet (nf {sr.nf}, {sr.nb} RRDBs, gc {sr.gc}): {sr.psnr_steps} L1 steps, "
                f"then {sr.gan_steps} GAN steps; batch {sr.batch}, hi-res patch {sr.hr_patch} px")
    writer = MetricsWriter(out_dir, trainer.step) if ctx.rank == 0 else None
    steps, window, tick, last_saved = 0, [], time.perf_counter(), trainer.step

    def done() -> bool:
        return trainer.step >= trainer.total_steps or (max_steps > 0 and steps >= max_steps)

    while not done():
        window.append(trainer.train_step())
        steps += 1
        if steps % sr.log_every == 0 or done():
            seconds = time.perf_counter() - tick
            keys = sorted(set.intersection(*(set(m) for m in window)))
            mean = {k: sum(m[k] for m in window) / len(window) for k in keys}
            metrics = {"step": trainer.step, "stage": stage_lr(sr, trainer.step - 1)[0],
                       **_mean_over_workers(mean, ctx),
                       "pairs_per_s": len(window) * sr.batch / max(seconds, 1e-9)}
            window, tick = [], time.perf_counter()
            ctx.report(metrics)
            if writer is not None:
                writer.write(metrics)
                extra = f"  GAN G {metrics['G_gan']:.3f} D {metrics['D_gan']:.3f}" if "D_gan" in metrics else ""
                ctx.log(f"superres step {trainer.step:7d}/{trainer.total_steps} ({metrics['stage']})  "
                        f"L1 {metrics['G_l1']:.4f}  PSNR {metrics['psnr']:.2f} dB (bicubic "
                        f"{metrics['psnr_bicubic']:.2f}){extra}  {metrics['pairs_per_s']:.1f} pairs/s")
        every = sr.checkpoint_steps
        if ((every > 0 and trainer.step % every == 0) or done()) and trainer.step != last_saved:
            if ctx.rank == 0:
                save_checkpoint(out_dir, cfg, trainer.step, trainer.images_seen, trainer.state_dict(), keep=2)
                writer.flush()
            last_saved = trainer.step
    if writer is not None:
        writer.close()
    return trainer


def _superres_worker_entry(loop_config: dict[str, Any]) -> None:

    run_superres_worker(Config.from_dict(loop_config["config"]), loop_config["run_dir"], loop_config["videos"],
                        ray_worker_context("deeplandscape.superres", loop_config), loop_config.get("max_steps", 0))


def prepare_superres(cfg: Config, run_dir: str, videos_uri: str, rebuild_pairs: bool = False,
                     log=print) -> list[str]:
    """Driver-side checks before any worker starts: the run has G (and E when the pair method
    needs it), the videos exist, the cached pairs match. Returns the video URIs."""

    validate_superres(cfg.superres)
    check_uris(cfg, run_dir)
    storage.check_no_credentials(videos_uri or "", "--videos")
    g_ckpt = latest_checkpoint(run_dir)
    if g_ckpt is None:
        raise FileNotFoundError(f"no generator checkpoint under {storage.join(run_dir, 'checkpoints')}: train one "
                                f"first with `deeplandscape train --run-dir {run_dir} ...`")
    e_ckpt = None
    if METHODS[cfg.superres.pair_method].init_w == "encoder":
        e_ckpt = latest_checkpoint(encoder_dir(run_dir))
        if e_ckpt is None:
            raise FileNotFoundError(f"no encoder under {encoder_dir(run_dir)}/checkpoints: the pairs' inversion "
                                    f"starts from E (superres.pair_method={cfg.superres.pair_method}); train it first "
                                    f"with `deeplandscape train-encoder --run-dir {run_dir}`")
    sr_ckpt = latest_checkpoint(superres_dir(run_dir))
    if sr_ckpt is not None:  # resuming: the saved networks must fit the ones this config builds
        old = json.loads(storage.read_text(storage.join(sr_ckpt.uri, "config.json"))).get("superres", {})
        shape = ("nf", "nb", "gc", "hr_patch", "d_nf")
        diff = [f"{k}={old.get(k)} (now {getattr(cfg.superres, k)})" for k in shape
                if k in old and old[k] != getattr(cfg.superres, k)]
        if diff:
            raise ValueError(f"{sr_ckpt.uri} was trained with other network settings: {', '.join(diff)}; use the "
                             f"same settings to resume, or move {superres_dir(run_dir)}/checkpoints away to start over")
    videos = list_videos(videos_uri)
    resolution = load_model(run_dir).resolution
    check_settings(run_dir, PairSettings.of(cfg, g_ckpt.uri, e_ckpt.uri if e_ckpt else "", resolution),
                   rebuild_pairs, log)
    return videos


def train_superres(cfg: Config, run_dir: str, videos_uri: str, max_steps: int = 0, rebuild_pairs: bool = False,
                   log=print):
    """Build the pairs and train the SR network under Ray Train on `scale.workers` workers."""
    if not storage.is_remote(run_dir):
        run_dir = storage.resolve(run_dir)[1]
    if videos_uri and not storage.is_remote(videos_uri):
        videos_uri = storage.resolve(videos_uri)[1]
    videos = prepare_superres(cfg, run_dir, videos_uri, rebuild_pairs, log)
    ckpt = latest_checkpoint(superres_dir(run_dir))
    sr = cfg.superres
    log(f"superres: {'resuming from step ' + str(ckpt.step) if ckpt else 'new'} in {superres_dir(run_dir)}; "
        f"{len(videos)} video(s) x {sr.frames_per_video} frames, {sr.psnr_steps} + {sr.gan_steps} steps, "
        f"batch {sr.batch}, {cfg.scale.workers} worker(s)")
    return run_ray_trainer(_superres_worker_entry,
                           {"config": cfg.to_dict(), "run_dir": run_dir, "videos": videos, "max_steps": max_steps},
                           cfg, storage.join(superres_dir(run_dir), "ray"), "ray-train-superres", what="train-superres", log=log)
