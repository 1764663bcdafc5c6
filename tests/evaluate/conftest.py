"""Shared by the evaluation tests: an I3D stand-in with the real call signature and output
shape, added to the session's stand-in weight cache (tests/conftest.py)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deeplandscape.evaluate import weights


class I3DStandIn(torch.nn.Module):
    """The I3D TorchScript's call signature, ``(x, rescale, resize, return_features)``, with
    x [B, 3, T, 224, 224] in [-1, 1] -> [B, 400]; it checks that it gets what I3D expects."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.proj = torch.nn.Linear(3 * 4 * 4 * 4, 400)

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        assert not rescale and not resize, "the pipeline prepares clips itself"
        assert x.dim() == 5 and x.shape[1] == 3 and x.shape[3] == 224 and x.shape[4] == 224, "[B, 3, T, 224, 224]"
        assert bool(x.min() >= -1.0) and bool(x.max() <= 1.0), "inputs in [-1, 1]"
        pooled = F.adaptive_avg_pool3d(x, [4, 4, 4]).flatten(1)  # [B, 192]: colour, layout and motion
        logits = 4.0 * torch.tanh(self.proj(pooled * 3.0))  # [B, 400]
        return logits if return_features else torch.softmax(logits, dim=1)


def write_i3d_stand_in(path) -> None:
    torch.jit.save(torch.jit.script(I3DStandIn().eval()), str(path))


@pytest.fixture(scope="session")
def i3d_stand_in(stand_in_cache):
    """The I3D stand-in in the session's weight cache (tests/conftest.py has the image networks)."""
    write_i3d_stand_in(stand_in_cache / weights.REGISTRY["i3d"].filename)
    return stand_in_cache


@pytest.fixture
def eval_env(eval_env, i3d_stand_in):
    """The shared `eval_env`, with I3D in its cache too."""
    return eval_env
