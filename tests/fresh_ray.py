"""Child processes with a Ray of their own, apart from the session's shared Ray.

Some tests need a Ray started with another environment (S3 endpoint and credentials: Ray
workers inherit the environment of the Ray they belong to) or another shape (several nodes,
a head started with `ray start`) than the session's `local_ray` (tests/conftest.py). They
run it in a child process whose `RAY_TMPDIR` is a fresh folder, so its sessions and its
`ray_current_cluster` address file never meet the session's Ray, nor anyone else's.

    python tests/fresh_ray.py '[["train", "--config", "tiny", ...], ["train", ...]]'

runs `deeplandscape` commands one after another on one fresh 2-CPU local Ray.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile


@contextlib.contextmanager
def ray_tmpdir():
    """A fresh folder for a child's Ray, and the environment that points Ray at it."""
    temp_dir = tempfile.mkdtemp(prefix="dlray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    try:
        yield temp_dir, {**env, "RAY_TMPDIR": temp_dir, "RAY_AUTH_MODE": "disabled"}
    finally:
        kill_leftovers(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def kill_leftovers(temp_dir: str) -> list[int]:
    """SIGKILL the processes still holding files under `temp_dir`: a child's Ray whose driver
    was killed (a timeout) can leave agents behind. Only processes of that Ray match."""
    killed = []
    for pid in filter(str.isdigit, os.listdir("/proc") if os.path.isdir("/proc") else []):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
            files = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        except OSError:  # gone, or not ours to read
            continue
        if int(pid) != os.getpid() and (temp_dir in cmdline or any(f.startswith(temp_dir + "/") for f in files)):
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)
                killed.append(int(pid))
    return killed


def run_script(args: list[str], timeout_s: float) -> subprocess.CompletedProcess:
    """`python ARGS` with a Ray of its own; stdout and stderr captured together."""
    with ray_tmpdir() as (_, env):
        return subprocess.run([sys.executable, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=timeout_s)


def run_commands(commands: list[list[str]], timeout_s: float = 240) -> subprocess.CompletedProcess:
    """Run `deeplandscape` commands one after another on one fresh 2-CPU local Ray."""
    return run_script([__file__, json.dumps(commands)], timeout_s)


def main(commands: list[list[str]]) -> int:
    import ray

    from deeplandscape.cli import main as deeplandscape

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=True)
    try:
        for argv in commands:
            print(f"$ deeplandscape {' '.join(argv)}", flush=True)
            code = deeplandscape(argv)
            if code:
                return code
        return 0
    finally:
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
