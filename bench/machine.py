"""What the bench scripts share: repeated, interleaved timing of the arms being compared, and
the machine's matmul rate before and after, so that a run disturbed by other work shows
(these machines are shared and noisy; one run of a bench can say anything).

    from machine import Watch, interleaved, summary   # bench/ is on sys.path when a script there runs

    with Watch() as watch:                                   # prints the matmul rate before and after
        times = interleaved({"one": run_one, "batched": run_batched}, repeat=3)
    print(summary(times["batched"]))                         # "min 1.234 s, spread 7% over 3"

`interleaved` runs A B A B A B rather than A A A B B B, so a slow spell of the machine falls
on every arm alike; the minimum of an arm is its figure (noise only ever adds time) and the
spread, (max - min) / min, says how much to trust it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import torch

# Matmul rates before and after a bench that differ by more than this mark the run as disturbed.
DISTURBED = 0.15


def sync(device: torch.device | str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def matmul_rate(device: torch.device | str = "cpu", n: int = 1024, repeat: int = 20,
                dtype: torch.dtype = torch.float32) -> float:
    """Measured matmul FLOP/s on `device` (float32 unless `dtype` says otherwise)."""
    device = torch.device(device)
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeat):
        a @ b
    sync(device)
    return 2 * n**3 * repeat / (time.perf_counter() - start)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (a moto server, a process group)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def interleaved(arms: dict[str, Callable[[], float | None]], repeat: int = 3) -> dict[str, list[float]]:
    """Seconds of each arm, `repeat` rounds of every arm in turn. An arm returns the seconds it
    measured itself (to leave out its own set-up), or None to be timed whole."""
    times: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(repeat):
        for name, fn in arms.items():
            start = time.perf_counter()
            got = fn()
            times[name].append(time.perf_counter() - start if got is None else float(got))
    return times


def spread(times: list[float]) -> float:
    """(max - min) / min of repeated timings of one arm."""
    return (max(times) - min(times)) / min(times)


def summary(times: list[float]) -> str:
    return f"min {min(times):.3f} s, spread {spread(times):.0%} over {len(times)}"


class Watch:
    """Prints the matmul rate on entry and on exit and says whether the machine changed in
    between; `.before`, `.after` and `.disturbed` hold the figures."""

    def __init__(self, device: torch.device | str = "cpu", log: Callable[[str], None] = print):
        self.device, self.log = torch.device(device), log
        self.before = self.after = 0.0
        self.disturbed = False

    def probe(self) -> float:
        """The best of three short probes (one probe alone moves by 20% on a quiet machine), on
        the torch threads the run started with: an arm may have changed them."""
        threads = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            return max(matmul_rate(self.device) for _ in range(3))
        finally:
            torch.set_num_threads(threads)

    def __enter__(self) -> "Watch":
        self.threads = torch.get_num_threads()
        self.before = self.probe()
        self.log(f"machine before: float32 matmul {self.before / 1e9:.0f} GFLOP/s on {self.device} "
                 f"({self.threads} torch threads)")
        return self

    def __exit__(self, *exc) -> None:
        self.after = self.probe()
        change = self.after / self.before - 1
        self.disturbed = abs(change) > DISTURBED
        note = (" -- DISTURBED: the machine's speed changed during the run; rerun it on a quiet machine"
                if self.disturbed else "")
        self.log(f"machine after : float32 matmul {self.after / 1e9:.0f} GFLOP/s ({change:+.0%}){note}")
