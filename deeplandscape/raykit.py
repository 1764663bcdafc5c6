"""The Ray plumbing every command shares: start or join Ray, check resources, relay progress.

A command typed in a fresh shell, the same command inside `ray job submit`, and a Python
caller that has started Ray already all go through `ensure_ray()`:

    already initialised   use it as it is (tests, notebooks, a Tune trial)
    RAY_ADDRESS set       join that cluster (`ray job submit` sets it)
    `ray start` ran here  join that cluster
    otherwise             start a local Ray on this machine

Ray's own output (its controllers, placement-group cleaners, progress bars, C++ warnings)
goes to Ray's log folder, named once when Ray starts; the terminal shows the project's lines.
Lines that workers log through their `WorkerContext` reach the terminal through a
`LogRelay` (a small queue actor the driver reads), so progress still shows.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any, Callable

import ray
import torch
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from deeplandscape import storage
from deeplandscape.config import Config

RELAY_KEY = "_log_relay"  # loop_config entry with the driver's LogRelay queue


class ResourceError(ValueError):
    """A job asks for more than the cluster has and nothing can add it: one line, the setting to change."""


_state: dict[str, Any] = {"started_here": False, "command_line": False}


def for_command_line() -> None:
    """This process is a `deeplandscape` command (not a library caller): when Ray starts, its
    native log lines written to the process's stderr go to Ray's log folder instead."""
    _state["command_line"] = True


def ensure_ray(log: Callable[[str], None] = print, dashboard: bool = False) -> None:
    """Start or join Ray (see the module docstring); a no-op when Ray is up in this process.

    A local Ray starts without the dashboard unless `dashboard` (its processes compete for a
    laptop's cores; Ray Tune needs its state API to clean up the trials it stops)."""
    if ray.is_initialized():
        return
    quiet_driver()
    joining = _existing_cluster()
    context = ray.init(log_to_driver=False, logging_level=logging.ERROR,
                       **({} if joining or dashboard else {"include_dashboard": False}))
    _state["started_here"] = joining is None
    resources = ray.cluster_resources()
    gpus = f", {resources['GPU']:g} GPU(s)" if resources.get("GPU") else ""
    where = f"joined the cluster at {joining}" if joining else "started a local Ray"
    logs = os.path.join(context.address_info.get("session_dir", "?"), "logs")
    log(f"Ray: {where} ({resources.get('CPU', 0):g} CPUs{gpus}); Ray's own logs: {logs}")
    if _state["command_line"] and os.path.isdir(logs):
        _native_stderr_to(os.path.join(logs, f"driver-{os.getpid()}.err"))


def _native_stderr_to(path: str) -> None:
    """Send what Ray's C++ core writes to file descriptor 2 (its ERROR lines about actor
    restarts and the like) to `path`; Python's `sys.stderr`, on which our errors are printed,
    keeps the terminal through a duplicate of the original descriptor."""
    sys.stderr.flush()
    terminal = os.fdopen(os.dup(2), "w", buffering=1)
    target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(target, 2)
    os.close(target)
    sys.stderr = terminal


def _existing_cluster() -> str | None:
    """The address `ray.init()` will join, or None when it will start a local Ray."""
    if os.environ.get("RAY_ADDRESS"):
        return os.environ["RAY_ADDRESS"]
    try:  # the cluster a `ray start` on this machine recorded (Ray's own lookup)
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address(None)
    except Exception:  # noqa: BLE001 - a Ray without that helper: assume a fresh local Ray
        return None


def quiet_driver() -> None:
    """Keep Ray's progress bars and INFO lines off this process's terminal."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    for name in ("ray", "ray.data", "ray.train", "ray.tune"):
        logging.getLogger(name).setLevel(logging.ERROR)


def cluster_resources() -> dict[str, float]:
    """The cluster's CPUs and GPUs. Before Ray is up, when `ensure_ray` would start a local
    Ray, what that Ray will have (this machine's), without starting it: a request that cannot
    fit is refused in a second, not after Ray's start-up."""
    if ray.is_initialized():
        return {k: float(v) for k, v in ray.cluster_resources().items()}
    if _existing_cluster() is None:
        return {"CPU": float(_local_cpus()), "GPU": float(_local_gpus())}
    ensure_ray()
    return {k: float(v) for k, v in ray.cluster_resources().items()}


def _local_cpus() -> int:
    try:  # what a local ray.init() detects (cgroup limits included)
        from ray._private.utils import get_num_cpus

        return int(get_num_cpus())
    except Exception:  # noqa: BLE001 - a Ray without that helper
        return os.cpu_count() or 1


def _local_gpus() -> int:
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _can_grow() -> bool:
    """Whether nodes may still join: a cluster this process joined (an autoscaler may add
    some), not a local Ray it started or is about to start."""
    if ray.is_initialized():
        return not _state["started_here"]
    return _existing_cluster() is not None


def actor_device(use_gpu: bool) -> torch.device:
    """The device of a Ray actor or task: its GPU when it asked for one (then Ray gave it one,
    so a missing CUDA device is a broken node, said loudly, never a silent CPU run), else CPU."""
    if not use_gpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("this Ray actor was scheduled with a GPU, but torch sees no CUDA device on "
                           f"{os.uname().nodename} (check the node's driver and CUDA_VISIBLE_DEVICES)")
    return torch.device("cuda")


def require_resources(cpus: float, gpus: float, what: str, fix: str, log: Callable[[str], None] = print) -> None:
    """Fail at once, in one line, when `what` needs more CPUs or GPUs than the cluster has.

    On a Ray this command started, nothing can add nodes: a request that does not fit would
    wait forever, so it is an error. On a joined cluster an autoscaler may add nodes: say what
    is missing and go on."""
    have = cluster_resources()
    short = [f"{need:g} {kind}s but the cluster has {have.get(kind, 0):g}"
             for kind, need in (("CPU", cpus), ("GPU", gpus)) if need > have.get(kind, 0) + 1e-9]
    if not short:
        return
    message = f"{what} needs {'; '.join(short)}"
    if not _can_grow():
        raise ResourceError(f"{message}: {fix}")
    log(f"warning: {message}; it waits until the autoscaler adds nodes ({fix})")


def fit_cpus_per_worker(cfg: Config, reserve: int, what: str, log: Callable[[str], None] = print) -> Config:
    """Resolve `scale.cpus_per_worker = 0` (auto) to what the cluster allows: its CPUs, less
    `reserve` for the data stream's decoding tasks, shared by the workers; then check the
    request fits (`require_resources`)."""
    s = cfg.scale
    if s.cpus_per_worker <= 0:
        s.cpus_per_worker = max(1, int((cluster_resources().get("CPU", 0) - reserve) // max(1, s.workers)))
    need = s.workers * s.cpus_per_worker + reserve
    decode = f" + {reserve} for the data stream's decoding" if reserve else ""
    require_resources(need, s.workers if s.use_gpu else 0,
                      f"{what} ({s.workers} worker(s) x {s.cpus_per_worker} CPU{decode}"
                      f"{', 1 GPU each' if s.use_gpu else ''})",
                      "use fewer --workers, or --set scale.cpus_per_worker=N" + (", or drop --gpu" if s.use_gpu else ""),
                      log)
    return cfg


# --- progress lines from workers -----------------------------------------------------------------
class LogRelay:
    """Workers' progress lines, printed by the driver while a Ray job runs.

    The driver creates it around a job (`with LogRelay() as relay:`), hands `relay.queue` to
    the workers in their config, and a thread prints what they put. Workers call
    `relay_log(queue, logger)` for their `log` function."""

    def __init__(self, log: Callable[[str], None] = print):
        from ray.util.queue import Queue

        self.log = log
        # On the driver's node, with no CPU: it never waits for a free CPU, and losing a worker
        # node (which Ray Train survives with scale.max_failures) does not silence the progress.
        here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        self.queue = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)

    def __enter__(self) -> "LogRelay":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._drain()
        self.queue.shutdown()

    def _pump(self) -> None:
        from ray.util.queue import Empty

        while not self._stop.is_set():
            try:
                self.log(self.queue.get(timeout=0.5))
            except Empty:
                continue
            except Exception:  # noqa: BLE001 - the queue actor is gone (Ray shutting down)
                return

    def _drain(self) -> None:
        try:
            for line in self.queue.get_nowait_batch(self.queue.qsize()):
                self.log(line)
        except Exception:  # noqa: BLE001 - nothing left to print
            pass


def relay_log(queue, logger: str) -> Callable[[str], None]:
    """A worker's `log`: its Ray log file (through `logging`) and the driver's terminal."""
    logging.getLogger("deeplandscape").setLevel(logging.INFO)
    write = logging.getLogger(logger).info

    def log(line: str) -> None:
        write(line)
        if queue is not None:
            try:
                queue.put_nowait(line)
            except Exception:  # noqa: BLE001 - the driver went away; the log file still has it
                pass

    return log


# --- Ray Train --------------------------------------------------------------------------------------
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
                    datasets: dict[str, Any] | None = None, callbacks: list | None = None,
                    stream_cpus: int = 0, what: str = "training", log: Callable[[str], None] = print):
    """Run `entry(loop_config)` on `scale.workers` Ray Train workers; returns Ray's Result.

    `stream_cpus`: CPUs to leave free for Ray Data tasks feeding the workers; `what` names the
    job in messages. The workers' log lines come back to this process's terminal (`LogRelay`)."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    fit_cpus_per_worker(cfg, stream_cpus, what, log)
    ensure_ray(log)
    s = cfg.scale
    with LogRelay(log) as relay:
        trainer = TorchTrainer(
            entry,
            train_loop_config={**loop_config, "config": cfg.to_dict(), RELAY_KEY: relay.queue},
            scaling_config=ScalingConfig(num_workers=s.workers, use_gpu=s.use_gpu,
                                         resources_per_worker={"CPU": s.cpus_per_worker,
                                                               **({"GPU": 1} if s.use_gpu else {})}),
            run_config=RunConfig(name=name, **ray_storage(storage_path),
                                 failure_config=FailureConfig(max_failures=s.max_failures),
                                 callbacks=callbacks),  # sweeps: Tune's TuneReportCallback
            datasets=datasets,
        )
        try:
            return trainer.fit()
        except Exception as e:  # Ray Train wraps a worker's exception: keep its last line, not pages
            raise WorkerError(f"{what} failed on a worker: {last_error_line(e)}") from e


class WorkerError(RuntimeError):
    """A job's worker raised; the message is the worker's own error line."""


def last_error_line(e: BaseException) -> str:
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and not ln.strip().startswith("^")]
    return lines[-1] if lines else type(e).__name__

