"""Shared by the evaluation tests: stand-in weight files in a temporary cache, an I3D stand-in.

The real pretrained files cannot be downloaded here. The stand-ins have the real keys and
shapes (Inception, VGG16) or the real call signature and output shape (I3D), so every code
path runs; the values compare our code with itself or with pytorch-fid, not with papers.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from deeplandscape.evaluate import weights
from deeplandscape.evaluate.stand_ins import write_stand_in_weights


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
def stand_in_weights(tmp_path_factory):
    """A weight cache holding the I3D stand-in (see `image_stand_ins` for the image networks)."""
    folder = tmp_path_factory.mktemp("eval-weights")
    write_i3d_stand_in(folder / weights.REGISTRY["i3d"].filename)
    return folder


@pytest.fixture(scope="session")
def image_stand_ins(stand_in_weights):
    """The same cache with Inception and VGG16 stand-ins added (slower to write: ~150 MB)."""
    write_stand_in_weights(stand_in_weights, ("inception", "vgg16"), seed=0)
    return stand_in_weights


@pytest.fixture
def eval_env(stand_in_weights, tmp_path, monkeypatch):
    """$DEEPLANDSCAPE_WEIGHTS on the stand-ins and a fresh, empty statistics cache."""
    monkeypatch.setenv("DEEPLANDSCAPE_WEIGHTS", str(stand_in_weights))
    monkeypatch.setenv("DEEPLANDSCAPE_STATS_CACHE", str(tmp_path / "stats-cache"))
    return stand_in_weights
