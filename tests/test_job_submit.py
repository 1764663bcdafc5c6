"""`ray job submit --working-dir . -- python jobs/train.py ...` end to end, against a local head
that the test starts (`ray start --head --block` on free ports, in a Ray temp folder of its
own) and stops again, leaving the session's shared Ray alone."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from deeplandscape.train.checkpoint import list_checkpoints
from tests.fresh_ray import ray_tmpdir

REPO = Path(__file__).resolve().parent.parent
RAY = str(Path(sys.executable).parent / "ray")
PORT_FLAGS = ("--port", "--dashboard-port", "--ray-client-server-port", "--node-manager-port",
              "--object-manager-port", "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port",
              "--metrics-export-port", "--runtime-env-agent-port")


def free_ports(n: int) -> list[int]:
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(n)]
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]


@contextlib.contextmanager
def local_head(log_path: Path):
    """A 2-CPU head with the dashboard (the job server); yields (job API URL, environment)."""
    with ray_tmpdir() as (temp_dir, env):
        # The job's `python` is the one next to this `ray`, as on a cluster node's image.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        ports = dict(zip(PORT_FLAGS, free_ports(len(PORT_FLAGS))))
        cmd = [RAY, "start", "--head", "--block", "--num-cpus=2", "--include-dashboard=true",
               "--dashboard-host=127.0.0.1", f"--temp-dir={temp_dir}/ray", "--disable-usage-stats",
               "--min-worker-port=0", "--max-worker-port=0", *(f"{k}={v}" for k, v in ports.items())]
        with open(log_path, "w") as log:
            head = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            url = f"http://127.0.0.1:{ports['--dashboard-port']}"
            wait_for_job_api(url, head, log_path)
            yield url, env
        finally:
            stop(head)


def wait_for_job_api(url: str, head: subprocess.Popen, log_path: Path, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert head.poll() is None, f"ray start exited with {head.returncode}:\n{log_path.read_text()[-3000:]}"
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/api/version", timeout=5) as r:
                if r.status == 200:
                    return
        time.sleep(0.2)  # polling the job API until it answers
    raise TimeoutError(f"no job API at {url} after {timeout_s} s:\n{log_path.read_text()[-3000:]}")


def stop(head: subprocess.Popen) -> None:
    """SIGTERM makes `ray start --block` shut its node down; its process group goes after it."""
    head.send_signal(signal.SIGTERM)
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(head.pid, signal.SIGKILL)
    head.wait()


def test_train_job_through_ray_job_submit(synth_data, tmp_path):
    run_dir = tmp_path / "run"
    with local_head(tmp_path / "head.log") as (url, env):
        submit = subprocess.run(
            [RAY, "job", "submit", "--address", url, "--working-dir", str(REPO), "--",
             "python", "jobs/train.py", "--config", "tiny", "--images", str(synth_data / "photos"),
             "--videos", str(synth_data / "videos"), "--run-dir", str(run_dir),
             "--set", 'train.batch={"8": 8}', "--set", "train.max_steps=2", "--set", "train.log_every=1",
             "--set", "train.sample_kimg=0", "--set", "scale.cpus_per_worker=1"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert submit.returncode == 0, submit.stdout[-5000:]
    assert "succeeded" in submit.stdout and "done: checkpoints" in submit.stdout
    assert [c.step for c in list_checkpoints(str(run_dir))] == [2]
    assert (run_dir / "config.json").is_file() and (run_dir / "metrics.jsonl").read_text().count("\n") == 2
