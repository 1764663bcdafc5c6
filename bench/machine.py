"""What the bench scripts share: the machine's measured matmul rate, printed before and after a
bench so that a run disturbed by other work shows (these machines are shared and noisy).

    from machine import matmul_rate      # bench/ is on sys.path when a script there runs
"""

from __future__ import annotations

import time

import torch


def matmul_rate(device: torch.device | str = "cpu", n: int = 1024, repeat: int = 20) -> float:
    """Measured float32 matmul FLOP/s on `device`."""
    device = torch.device(device)
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(repeat):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return 2 * n**3 * repeat / (time.perf_counter() - start)
