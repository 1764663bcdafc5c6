"""`ray job submit --working-dir . -- python jobs/*.py ...` end to end, against a local head
that the test starts (`ray start --head --block` on free ports, in a Ray temp folder of its
own) and stops again, leaving the session's shared Ray alone."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

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


def submit(url: str, env: dict, *job: str) -> str:
    """`ray job submit --address URL --working-dir . -- python JOB ...` from the repository root,
    as the README writes it; the job's output."""
    done = subprocess.run([RAY, "job", "submit", "--address", url, "--working-dir", ".", "--", "python", *job],
                          cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-5000:]
    assert "succeeded" in done.stdout
    return done.stdout


def test_jobs_through_ray_job_submit(synth_data, tiny_run, tmp_path):
    """jobs/prepare.py and jobs/animate_bucket.py (jobs/train.py is the same three lines around
    `deeplandscape train`), each joining the head's Ray through RAY_ADDRESS, which the job
    server sets, with no ray.init of its own."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("00000.png", "00000.mask.png", "00001.png"):
        (photos / name).write_bytes((synth_data / "photos" / name).read_bytes())
    with local_head(tmp_path / "head.log") as (url, env):
        out = submit(url, env, "jobs/prepare.py", "--images", str(synth_data / "photos"),
                     "--videos", str(synth_data / "videos"), "--out", str(tmp_path / "shards"))
        assert "Ray: joined the cluster" in out and "prepared 24 photos and 4 videos" in out
        out = submit(url, env, "jobs/animate_bucket.py", str(photos), str(tmp_path / "videos"),
                     "--run-dir", str(tiny_run), "--directions", "1", "--frames", "4",
                     "--set", "invert.opt_steps=3", "--set", "invert.finetune_steps=3")
        assert "Ray: joined the cluster" in out and "pid=" not in out  # Ray's worker lines stay in its logs
    assert json.loads((tmp_path / "shards/manifest.json").read_text())["photos"]["prepared"] == 24
    assert sorted(p.parent.name for p in (tmp_path / "videos").glob("*/done.json")) == ["00000", "00001"]
