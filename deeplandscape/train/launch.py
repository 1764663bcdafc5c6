"""Launching training under Ray Train: the driver side of `deeplandscape train`.

The run directory is the unit of work: it holds the resolved `config.json`, checkpoints,
`metrics.jsonl`, TensorBoard events and samples. Launching again with the same run
directory resumes from its latest checkpoint; a worker failure restarts the worker group
(`scale.max_failures`), which resumes the same way.
"""

from __future__ import annotations

import json
from typing import Any

from deeplandscape import storage
from deeplandscape.config import Config
from deeplandscape.data.stream import resolve_source, training_datasets
from deeplandscape.raykit import RELAY_KEY, ensure_ray, fit_cpus_per_worker, relay_log, run_ray_trainer
from deeplandscape.render import write_training_snapshot
from deeplandscape.train.checkpoint import latest_checkpoint
from deeplandscape.train.loop import WorkerContext, run_worker
from deeplandscape.train.schedule import global_batch, learning_rate, num_phases, phase_at


def ray_worker_context(logger: str, loop_config: dict[str, Any]):
    """The `WorkerContext` of a Ray Train worker. Its `log` writes through `logging` (Ray
    Train's print patch sends print() to the log twice) and to the driver's terminal (the
    `LogRelay` in `loop_config`); Ray Train's per-report INFO lines are turned down."""
    import logging

    import ray.train
    import ray.train.torch


    try:
        from ray.train.v2._internal.execution import context as _ray_context

        _ray_context.logger.setLevel(logging.WARNING)
    except (ImportError, AttributeError):  # a Ray version without that module: just noisier
        pass
    context = ray.train.get_context()
    return WorkerContext(rank=context.get_world_rank(), world_size=context.get_world_size(),
                         device=ray.train.torch.get_device(), report=lambda metrics: ray.train.report(metrics),
                         log=relay_log(loop_config.get(RELAY_KEY), logger))


def _worker_entry(loop_config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker. `loop_config["metrics_fn"]`, when given, is
    `run_worker`'s hook: entries it returns join each reported metrics line (sweeps)."""

    cfg = Config.from_dict(loop_config["config"])
    run_dir = loop_config["run_dir"]
    ctx = ray_worker_context("deeplandscape.train", loop_config)
    if ctx.rank == 0:
        import torch

        ctx.log(f"{ctx.world_size} worker(s) on {ctx.device}, {torch.get_num_threads()} torch thread(s) each")

    def snapshot(trainer, run_dir: str) -> None:
        phase = phase_at(trainer.images_seen, cfg.train, cfg.model.resolution)
        write_training_snapshot(trainer.G_ema, phase.resolution, phase.alpha, trainer.images_seen / 1000, run_dir)

    run_worker(cfg, run_dir, ctx, sample_fn=snapshot, metrics_fn=loop_config.get("metrics_fn"))


def describe_plan(cfg: Config) -> str:
    """A human-readable schedule: phases, batch sizes and learning rates."""
    t, res = cfg.train, cfg.model.resolution
    lines = [f"model {res} px, z {cfg.model.z_dim} (z_dyn {cfg.model.z_dyn_dim}), w {cfg.model.w_dim}, "
             f"D_pair variant {cfg.model.pair_d!r}",
             f"{cfg.scale.workers} worker(s), gpu={cfg.scale.use_gpu}, total {t.total_kimg:g} kimg"]
    for k in range(num_phases(t, res)):
        r = t.start_resolution * 2**k
        start = k * t.phase_kimg
        if start >= t.total_kimg:
            break
        lines.append(f"  phase {k}: {r:4d} px from {start:g} kimg, batch {global_batch(t, r)}, lr {learning_rate(t, r):g}"
                     + (f", fade-in {t.fade_kimg:g} kimg" if k else ""))
    lines.append(f"  D_pair probability: {t.p_pair_mode} {t.p_pair_start:g} -> {t.p_pair_end:g} over "
                 f"{t.p_pair_anneal_kimg:g} kimg{' of each phase' if t.p_pair_restart_per_phase else ''}; "
                 f"crop sampling {t.crop_prob:g}")
    return "\n".join(lines)


def prepare_run_dir(cfg: Config, run_dir: str) -> str:
    """Write `config.json`; refuse to resume a run whose model differs. Returns a status line."""
    cfg_uri = storage.join(run_dir, "config.json")
    ckpt = latest_checkpoint(run_dir)
    if storage.exists(cfg_uri) and ckpt is not None:
        old = Config.from_dict(json.loads(storage.read_text(cfg_uri)))
        if old.model != cfg.model:
            raise ValueError(f"{run_dir} holds a run with a different model config ({cfg_uri}); "
                             "use a new --run-dir, or the same preset and --set values")
    storage.write_text(cfg_uri, cfg.to_json())
    if ckpt is None:
        return f"new run in {run_dir}"
    phase = phase_at(ckpt.images_seen, cfg.train, cfg.model.resolution)
    return (f"resuming {run_dir} from step {ckpt.step} ({ckpt.images_seen / 1000:.1f} kimg, "
            f"{phase.resolution} px, alpha {phase.alpha:.2f})")


def train(cfg: Config, run_dir: str, log=print, metrics_fn=None, callbacks: list | None = None):
    """Train with Ray Train's TorchTrainer on `scale.workers` workers; returns Ray's Result,
    or None when the run directory holds a finished run (said at once, without starting Ray).

    A sweep's trial passes `metrics_fn` (see `_worker_entry`) and `callbacks` (Ray Tune's
    `TuneReportCallback`, which forwards every report to Tune)."""
    check_uris(cfg, run_dir)
    run_dir = storage.absolute(run_dir)
    cfg.data.images, cfg.data.videos = storage.absolute(cfg.data.images), storage.absolute(cfg.data.videos)
    finished = finished_run(cfg, run_dir)
    if finished:
        log(finished)
        return None
    stream = resolve_source(cfg) == "stream"
    fit_cpus_per_worker(cfg, 1 if stream else 0, "training", log)  # before Ray starts: a misfit says so at once
    log(prepare_run_dir(cfg, run_dir))
    log(describe_plan(cfg))
    ensure_ray(log)
    loop_config = {"run_dir": run_dir, **({"metrics_fn": metrics_fn} if metrics_fn is not None else {})}
    return run_ray_trainer(_worker_entry, loop_config, cfg, storage.join(run_dir, "ray"), name="ray-train",
                           datasets=training_datasets(cfg) if stream else None, callbacks=callbacks,
                           stream_cpus=1 if stream else 0, log=log)


def finished_run(cfg: Config, run_dir: str) -> str | None:
    """A line saying the run directory's run has reached `train.total_kimg`, else None."""
    ckpt = latest_checkpoint(run_dir)
    if ckpt is None or ckpt.images_seen < int(cfg.train.total_kimg * 1000):
        return None
    return (f"{run_dir} is finished: {ckpt.images_seen / 1000:g} of {cfg.train.total_kimg:g} kimg (step {ckpt.step}); "
            f"nothing to do (raise train.total_kimg with --set to train further)")


def check_uris(cfg: Config, run_dir: str) -> None:
    """Credentials belong in the environment or an instance profile, never in a URI: the URIs
    are written to config.json, printed, and handed to every Ray worker."""
    storage.check_no_credentials(run_dir, "--run-dir")
    storage.check_no_credentials(cfg.data.images, "data.images")
    storage.check_no_credentials(cfg.data.videos, "data.videos")
