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
from deeplandscape.data.stream import training_datasets
from deeplandscape.train.checkpoint import latest_checkpoint
from deeplandscape.train.schedule import global_batch, learning_rate, num_phases, phase_at


def ray_worker_context(logger: str):
    """The `WorkerContext` of a Ray Train worker, logging through `logging` (Ray Train's print
    patch sends print() to the log twice) with Ray Train's per-report INFO lines ("Reporting
    training result ...", logged by a module logger named after its file) turned down."""
    import logging

    import ray.train
    import ray.train.torch

    from deeplandscape.train.loop import WorkerContext

    logging.getLogger("deeplandscape").setLevel(logging.INFO)
    try:
        from ray.train.v2._internal.execution import context as _ray_context

        _ray_context.logger.setLevel(logging.WARNING)
    except (ImportError, AttributeError):  # a Ray version without that module: just noisier
        pass
    context = ray.train.get_context()
    return WorkerContext(rank=context.get_world_rank(), world_size=context.get_world_size(),
                         device=ray.train.torch.get_device(), report=lambda metrics: ray.train.report(metrics),
                         log=logging.getLogger(logger).info)


def _worker_entry(loop_config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker. `loop_config["metrics_fn"]`, when given, is
    `run_worker`'s hook: entries it returns join each reported metrics line (sweeps)."""
    from deeplandscape.sample import write_training_snapshot
    from deeplandscape.train.loop import run_worker

    cfg = Config.from_dict(loop_config["config"])
    run_dir = loop_config["run_dir"]
    ctx = ray_worker_context("deeplandscape.train")
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
    """Train with Ray Train's TorchTrainer on `scale.workers` workers; returns Ray's Result.

    A sweep's trial passes `metrics_fn` (see `_worker_entry`) and `callbacks` (Ray Tune's
    `TuneReportCallback`, which forwards every report to Tune)."""
    check_uris(cfg, run_dir)
    if not storage.is_remote(run_dir):
        run_dir = storage.resolve(run_dir)[1]
    log(prepare_run_dir(cfg, run_dir))
    log(describe_plan(cfg))
    loop_config = {"config": cfg.to_dict(), "run_dir": run_dir,
                   **({"metrics_fn": metrics_fn} if metrics_fn is not None else {})}
    return run_ray_trainer(_worker_entry, loop_config, cfg, storage.join(run_dir, "ray"), name="ray-train",
                           datasets=training_datasets(cfg),  # None unless data.source streams
                           callbacks=callbacks)


def check_uris(cfg: Config, run_dir: str) -> None:
    """Credentials belong in the environment or an instance profile, never in a URI: the URIs
    are written to config.json, printed, and handed to every Ray worker."""
    storage.check_no_credentials(run_dir, "--run-dir")
    storage.check_no_credentials(cfg.data.images, "data.images")
    storage.check_no_credentials(cfg.data.videos, "data.videos")


def ray_storage(storage_path: str) -> dict[str, Any]:
    """`RunConfig` storage arguments. For a bucket the pyarrow filesystem is passed explicitly
    (with the path inside it, no scheme), so Ray Train's own files go through the same
    filesystem and endpoint as ours (`AWS_ENDPOINT_URL`, see storage.py). Credentials are not
    part of it: each process takes them from its own environment or instance profile."""
    if not storage.is_remote(storage_path):
        return {"storage_path": storage_path}
    fs, path = storage.resolve(storage_path)
    return {"storage_path": path, "storage_filesystem": fs}


def run_ray_trainer(entry, loop_config: dict[str, Any], cfg: Config, storage_path: str, name: str,
                    datasets: dict[str, Any] | None = None, callbacks: list | None = None):
    """Run `entry(loop_config)` on `scale.workers` Ray Train workers; returns Ray's Result."""
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    if not ray.is_initialized():
        ray.init(log_to_driver=True)
    s = cfg.scale
    trainer = TorchTrainer(
        entry,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=s.workers, use_gpu=s.use_gpu,
                                     resources_per_worker={"CPU": s.cpus_per_worker, **({"GPU": 1} if s.use_gpu else {})}),
        run_config=RunConfig(name=name, **ray_storage(storage_path),
                             failure_config=FailureConfig(max_failures=s.max_failures),
                             callbacks=callbacks),  # sweeps: Tune's TuneReportCallback
        datasets=datasets,
    )
    return trainer.fit()
