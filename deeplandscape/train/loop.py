"""The DeepLandscape training step and the per-worker training function.

One iteration reads like paper section 3.1:
    pick the discriminator (D_pair with the annealed probability p, else D_st),
    D step on real vs fake (fake pairs may be two crops of one real frame) with R1,
    G step against the same discriminator, EMA, count the global batch.

`run_worker` does not care how it was launched: Ray Train calls it on every worker
(`deeplandscape.train.launch`), unit tests call it in-process with `WorkerContext()`.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torch.distributed as dist

from deeplandscape import storage
from deeplandscape.config import Config
from deeplandscape.data.stream import open_training_data
from deeplandscape.data.training import TrainingData
from deeplandscape.nets.discriminator import Discriminator
from deeplandscape.nets.generator import Generator
from deeplandscape.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from deeplandscape.train.latents import generate, sample_latents, step_generator
from deeplandscape.train.losses import d_logistic_loss, d_r1_penalty, g_nonsaturating_loss
from deeplandscape.train.schedule import global_batch, learning_rate, pair_probability, phase_at


@dataclass
class WorkerContext:
    """Where a worker runs. The defaults are one in-process worker on the CPU."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    report: Callable[[dict[str, Any]], None] = lambda metrics: None
    log: Callable[[str], None] = print


def build_networks(cfg: Config, device: torch.device) -> tuple[Generator, Generator, Discriminator, Discriminator]:
    """G, its EMA copy, D_st and D_pair, initialised from `train.seed` (same on every rank)."""
    torch.manual_seed(cfg.train.seed)
    G = Generator(cfg.model).to(device)
    D_st = Discriminator(cfg.model, pair=False).to(device)
    D_pair = Discriminator(cfg.model, pair=True).to(device)
    G_ema = copy.deepcopy(G).eval().requires_grad_(False)
    return G, G_ema, D_st, D_pair


@torch.no_grad()
def ema_update(G_ema: torch.nn.Module, G: torch.nn.Module, decay: float) -> None:
    for p_ema, p in zip(G_ema.parameters(), G.parameters()):
        p_ema.lerp_(p, 1.0 - decay)
    for b_ema, b in zip(G_ema.buffers(), G.buffers()):
        b_ema.copy_(b)


def all_reduce_gradients(module: torch.nn.Module, world_size: int) -> None:
    """Average gradients over workers (one flat all-reduce), like DDP without the wrapper.

    An explicit all-reduce (as NVlabs' stylegan2-ada does) instead of DDP because R1 needs
    a double backward and progressive growing leaves most layers unused at low resolution;
    every rank runs the same modules in a step, so the set of gradients matches.
    """
    if world_size <= 1 or not dist.is_initialized():
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.flatten() for g in grads]).div_(world_size)
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


class Trainer:
    """Networks, optimisers and progress of one worker; `train_step` runs one iteration."""

    def __init__(self, cfg: Config, data: TrainingData, ctx: WorkerContext | None = None):
        self.cfg, self.data, self.ctx = cfg, data, ctx or WorkerContext()
        self.device = self.ctx.device
        t = cfg.train
        self.G, self.G_ema, self.D_st, self.D_pair = build_networks(cfg, self.device)
        if t.channels_last:
            for net in (self.G, self.G_ema, self.D_st, self.D_pair):
                net.to(memory_format=torch.channels_last)
        # G's forward as the step calls it: compiled (train.compile) until a compile fails.
        self._G_forward = torch.compile(self.G) if t.compile else self.G
        betas = (t.beta1, t.beta2)
        # Mapping M learns 100x slower than the synthesis network (StyleGAN v1).
        self.opt_G = torch.optim.Adam([
            {"params": self.G.blocks.parameters(), "lr_mult": 1.0},
            {"params": self.G.M.parameters(), "lr_mult": t.mapping_lr_mult},
        ], lr=learning_rate(t, t.start_resolution), betas=betas)
        self.opt_D_st = torch.optim.Adam(self.D_st.parameters(), lr=learning_rate(t, t.start_resolution), betas=betas)
        self.opt_D_pair = torch.optim.Adam(self.D_pair.parameters(), lr=learning_rate(t, t.start_resolution), betas=betas)
        self.step = 0
        self.images_seen = 0

    # --- state -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "G": self.G.state_dict(), "G_ema": self.G_ema.state_dict(),
            "D_st": self.D_st.state_dict(), "D_pair": self.D_pair.state_dict(),
            "opt_G": self.opt_G.state_dict(), "opt_D_st": self.opt_D_st.state_dict(),
            "opt_D_pair": self.opt_D_pair.state_dict(),
            "step": self.step, "images_seen": self.images_seen,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "D_st" not in state:
            raise ValueError(f"the checkpoint holds generators only (imported from {state.get('imported_from', '?')}):"
                             f" training cannot resume from it; train into a new run directory")
        for name in ("G", "G_ema", "D_st", "D_pair", "opt_G", "opt_D_st", "opt_D_pair"):
            getattr(self, name).load_state_dict(state[name])
        self.step, self.images_seen = int(state["step"]), int(state["images_seen"])

    # --- one iteration -----------------------------------------------------------------------
    def _autocast(self):
        enabled = self.cfg.train.amp == "bf16" and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def _generate(self, lat, resolution: int, alpha: float) -> torch.Tensor:
        """`generate` through the compiled G (train.compile). A compile error shows on the first
        call (and on a new resolution's): log it once and go on with the plain G."""
        if self._G_forward is self.G:
            return generate(self.G, lat, resolution, alpha)
        try:
            out = generate(self._G_forward, lat, resolution, alpha)
        except Exception as e:  # torch._dynamo / inductor errors have no common base class
            self.ctx.log(f"train.compile: torch.compile failed ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                         "training goes on with the uncompiled generator")
            self._G_forward = self.G
            return generate(self.G, lat, resolution, alpha)
        return out

    def _set_lr(self, lr: float) -> None:
        for opt in (self.opt_G, self.opt_D_st, self.opt_D_pair):
            for group in opt.param_groups:
                group["lr"] = lr * group.get("lr_mult", 1.0)

    def batch_part(self, resolution: int) -> tuple[int, slice]:
        """(global batch, this worker's contiguous slice of it)."""
        total = global_batch(self.cfg.train, resolution)
        if total % self.ctx.world_size:
            raise ValueError(f"train.batch at {resolution} px ({total}) must divide by the {self.ctx.world_size} workers")
        local = total // self.ctx.world_size
        return total, slice(self.ctx.rank * local, (self.ctx.rank + 1) * local)

    def sample_fakes(self, batch: int, part: slice, frames: int, resolution: int, gen: torch.Generator):
        """This worker's slice of the global batch of G's inputs (drawn whole, so any
        number of workers sees the same global batch)."""
        lat = sample_latents(self.G, batch, frames, resolution, self.cfg.train.mixing_prob, gen, self.device)
        return lat.select(part)

    def choose_discriminator(self, p_pair: float) -> tuple[bool, bool]:
        """(use D_pair, use crop sampling), drawn from the step's shared stream so all ranks agree."""
        shared = step_generator(self.cfg.train.seed, self.step, "shared")
        coins = torch.rand(2, generator=shared)
        use_pair = bool(coins[0] < p_pair)
        return use_pair, use_pair and bool(coins[1] < self.cfg.train.crop_prob)

    def discriminator_step(self, D, opt, real: torch.Tensor, fake: torch.Tensor, resolution: int, alpha: float):
        real = real.detach().requires_grad_(True)
        with self._autocast():
            real_logits = D(real, resolution, alpha)
            fake_logits = D(fake.detach(), resolution, alpha)
        loss = d_logistic_loss(real_logits.float(), fake_logits.float())
        r1 = d_r1_penalty(real_logits.float(), real)
        opt.zero_grad(set_to_none=True)
        (loss + 0.5 * self.cfg.train.r1_gamma * r1).backward()
        all_reduce_gradients(D, self.ctx.world_size)
        opt.step()
        return loss.detach(), r1.detach()

    def generator_step(self, D, frames: int, batch: int, part: slice, resolution: int, alpha: float,
                       gen: torch.Generator) -> torch.Tensor:
        D.requires_grad_(False)
        lat = self.sample_fakes(batch, part, frames, resolution, gen)
        with self._autocast():
            fake = self._generate(lat, resolution, alpha)
            logits = D(fake if frames == 2 else fake[:, 0], resolution, alpha)
        loss = g_nonsaturating_loss(logits.float())
        self.opt_G.zero_grad(set_to_none=True)
        loss.backward()
        all_reduce_gradients(self.G, self.ctx.world_size)
        self.opt_G.step()
        D.requires_grad_(True)
        return loss.detach()

    def train_step(self) -> dict[str, Any]:
        t, res_max = self.cfg.train, self.cfg.model.resolution
        phase = phase_at(self.images_seen, t, res_max)
        res, alpha = phase.resolution, phase.alpha
        batch, part = self.batch_part(res)
        self._set_lr(learning_rate(t, res))
        p_pair = pair_probability(self.images_seen, t, res_max)
        use_pair, use_crop = self.choose_discriminator(p_pair)
        data_gen = step_generator(t.seed, self.step, "data")
        latent_gen = step_generator(t.seed, self.step, "latents", device=self.device)
        D, opt_D, frames = (self.D_pair, self.opt_D_pair, 2) if use_pair else (self.D_st, self.opt_D_st, 1)

        # Real batch: photos for D_st, two frames of one video for D_pair.
        if use_pair:
            real = self.data.sample_pairs(batch, res, data_gen, part)
        else:
            real = self.data.sample_images(batch, res, data_gen, part)
        # Fake batch for D: crop sampling replaces G's pair by two crops of one real frame,
        # so G's forward pass is skipped on those iterations.
        if use_crop:
            fake = self.data.sample_crop_pairs(batch, res, data_gen, part).images
        else:
            with torch.no_grad(), self._autocast():
                fake = self._generate(self.sample_fakes(batch, part, frames, res, latent_gen), res, alpha)
                fake = fake if use_pair else fake[:, 0]
        d_loss, r1 = self.discriminator_step(D, opt_D, real.to(self.device), fake.to(self.device), res, alpha)
        g_loss = self.generator_step(D, frames, batch, part, res, alpha, latent_gen)
        ema_update(self.G_ema, self.G, t.ema_decay)

        self.step += 1
        self.images_seen += batch
        name = "pair" if use_pair else "st"
        return {
            "step": self.step, "kimg": self.images_seen / 1000, "images_seen": self.images_seen,
            "resolution": res, "alpha": alpha, "p_pair": p_pair, "used_pair": use_pair, "used_crop": use_crop,
            f"D_{name}_loss": float(d_loss), f"D_{name}_r1": float(r1), f"G_{name}_loss": float(g_loss),
        }


class MetricsWriter:
    """Rank 0's metrics: `metrics.jsonl` (one JSON object per line) and TensorBoard events.

    A local run directory gets every line appended at once. An object in a bucket cannot be
    appended to, so for an `s3://` run directory `metrics.jsonl` is rewritten only at
    `flush()`: every `flush_lines` lines, after every checkpoint and at `close()`. TensorBoard
    then writes to a local temporary folder whose event files are uploaded to RUN/tensorboard/
    at the same moments. Nothing a resume would keep is lost by batching: lines logged after
    the checkpoint a run resumes from are dropped anyway.
    """

    def __init__(self, run_dir: str, resume_step: int, flush_lines: int = 50):
        from torch.utils.tensorboard import SummaryWriter

        self.uri = storage.join(run_dir, "metrics.jsonl")
        self.remote = storage.is_remote(run_dir)
        self.flush_lines = flush_lines
        self.unflushed = 0
        lines = storage.read_text(self.uri).splitlines() if storage.exists(self.uri) else []
        # Lines logged after the checkpoint we resume from belong to a run that died: drop them.
        self.lines = [ln for ln in lines if ln.strip() and json.loads(ln)["step"] <= resume_step]
        storage.write_text(self.uri, "".join(ln + "\n" for ln in self.lines))
        self.tb_uri = storage.join(run_dir, "tensorboard")
        self.tb_dir = tempfile.mkdtemp(prefix="deeplandscape-tb-") if self.remote else storage.resolve(self.tb_uri)[1]
        # purge_step: TensorBoard hides events of earlier event files from this step on.
        self.tb = SummaryWriter(self.tb_dir, purge_step=resume_step + 1)

    def write(self, metrics: dict[str, Any]) -> None:
        line = json.dumps(metrics, sort_keys=True)
        self.lines.append(line)
        for k, v in metrics.items():
            if isinstance(v, (int, float)) and k != "step":
                self.tb.add_scalar(k, v, metrics["step"])
        if self.remote:
            self.unflushed += 1
            if self.unflushed >= self.flush_lines:
                self.flush()
        else:
            with open(storage.resolve(self.uri)[1], "a") as f:
                f.write(line + "\n")
            self.tb.flush()

    def flush(self) -> None:
        """Make the run directory hold every line and event written so far."""
        self.tb.flush()
        if self.remote:
            storage.write_text(self.uri, "".join(ln + "\n" for ln in self.lines))
            self._upload_events()
            self.unflushed = 0

    def _upload_events(self) -> None:
        for path in Path(self.tb_dir).iterdir():
            if path.is_file():
                storage.upload_file(path, storage.join(self.tb_uri, path.name))

    def close(self) -> None:
        self.tb.close()
        self.flush()
        if self.remote:
            shutil.rmtree(self.tb_dir, ignore_errors=True)


def global_losses(metrics: dict[str, Any], world_size: int, device: torch.device) -> dict[str, Any]:
    """Average the loss entries of `metrics` over workers: each rank computed its losses on its
    own slice of the global batch, and equal slices make the mean of means the global mean.

    One small all-reduce, on log steps only. Every rank holds the same keys because every rank
    made the same discriminator choices (drawn from the step's shared RNG).
    """
    if world_size <= 1 or not dist.is_initialized():
        return metrics
    keys = sorted(k for k in metrics if k.startswith(("D_", "G_")))
    values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return {**metrics, **{k: v / world_size for k, v in zip(keys, values.tolist())}}


def _crossed(before: int, after: int, interval_kimg: float) -> bool:
    if interval_kimg <= 0:
        return False
    interval = interval_kimg * 1000
    return int(before // interval) != int(after // interval)


def summarise(window: list[dict[str, Any]], seconds: float, images_before: int) -> dict[str, Any]:
    """The last step's progress plus each loss averaged over the steps that produced it."""
    out = {k: v for k, v in window[-1].items() if not k.startswith(("D_", "G_"))}
    sums: dict[str, list[float]] = defaultdict(list)
    for m in window:
        for k, v in m.items():
            if k.startswith(("D_", "G_")):
                sums[k].append(v)
    out.update({k: sum(v) / len(v) for k, v in sorted(sums.items())})
    out["pair_fraction"] = sum(m["used_pair"] for m in window) / len(window)
    out["images_per_s"] = (window[-1]["images_seen"] - images_before) / max(seconds, 1e-9)
    del out["used_pair"], out["used_crop"]
    return out


def run_worker(cfg: Config, run_dir: str, ctx: WorkerContext | None = None,
               sample_fn: Callable[[Trainer, str], None] | None = None,
               metrics_fn: Callable[[Trainer, dict[str, Any]], dict[str, Any]] | None = None) -> Trainer:
    """Train until `train.total_kimg` (or `train.max_steps` steps in this call), resuming
    from the run directory's latest checkpoint. Rank 0 alone writes to the run directory.

    `metrics_fn(trainer, metrics)`, called on every rank at each log step, returns entries
    added to that step's metrics before they are reported and logged (a sweep's objective).
    """
    ctx = ctx or WorkerContext()
    t = cfg.train
    # data.source: in memory (exact resume) or Ray Data streams; rank 0 says which files it skipped
    data = open_training_data(cfg, ctx.log if ctx.rank == 0 else lambda line: None)
    trainer = Trainer(cfg, data, ctx)
    ckpt = latest_checkpoint(run_dir)
    if ckpt is not None:
        trainer.load_state_dict(load_checkpoint(ckpt.uri, map_location=ctx.device)[2])
        if ctx.rank == 0:
            ctx.log(f"resumed from {ckpt.uri} (step {ckpt.step}, {ckpt.images_seen / 1000:.1f} kimg)")
    writer = MetricsWriter(run_dir, trainer.step) if ctx.rank == 0 else None
    total_images = int(t.total_kimg * 1000)
    last_saved = trainer.step
    window: list[dict[str, Any]] = []
    steps_this_run, tick, tick_images = 0, time.perf_counter(), trainer.images_seen

    def done() -> bool:
        return trainer.images_seen >= total_images or (t.max_steps > 0 and steps_this_run >= t.max_steps)

    while not done():
        before = trainer.images_seen
        window.append(trainer.train_step())
        steps_this_run += 1
        after = trainer.images_seen
        if steps_this_run % t.log_every == 0 or done():
            metrics = summarise(window, time.perf_counter() - tick, tick_images)
            metrics = global_losses(metrics, ctx.world_size, ctx.device)
            if metrics_fn is not None:
                metrics.update(metrics_fn(trainer, metrics))
            window, tick, tick_images = [], time.perf_counter(), trainer.images_seen
            ctx.report(metrics)  # a barrier under Ray Train: every rank reports
            if writer is not None:
                writer.write(metrics)
                ctx.log(
                    f"step {metrics['step']:6d}  kimg {metrics['kimg']:8.2f}  {metrics['resolution']:4d}px "
                    f"alpha {metrics['alpha']:.2f}  p_pair {metrics['p_pair']:.2f}  "
                    f"{metrics['images_per_s']:7.1f} img/s  "
                    + "  ".join(f"{k} {v:.3f}" for k, v in metrics.items() if k.startswith(("D_", "G_")))
                )
        if ctx.rank == 0 and sample_fn is not None and _crossed(before, after, t.sample_kimg):
            sample_fn(trainer, run_dir)
        if (_crossed(before, after, t.checkpoint_kimg) or done()) and trainer.step != last_saved:
            if ctx.rank == 0:
                save_checkpoint(run_dir, cfg, trainer.step, trainer.images_seen, trainer.state_dict(),
                                keep=t.keep_checkpoints)
                writer.flush()
            last_saved = trainer.step
    if writer is not None:
        writer.close()
    return trainer
