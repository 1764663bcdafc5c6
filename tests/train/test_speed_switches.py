"""The speed switches of training (train.channels_last, train.compile) change how the step
runs, never what it computes; `bench/gpu_check.py` times them."""

from __future__ import annotations

import pytest
import torch

from deeplandscape.data.training import TrainingData
from deeplandscape.train.loop import Trainer
from tests.conftest import tiny_config


def losses(cfg, data: TrainingData, steps: int) -> tuple[list[dict], Trainer]:
    trainer = Trainer(cfg, data)
    trainer.images_seen = int(cfg.train.fade_kimg * 1000)  # 8 px, alpha 1
    return [trainer.train_step() for _ in range(steps)], trainer


def test_channels_last_trains_as_the_plain_layout_does(synth_data):
    overrides = {"train.start_resolution": "8", "train.p_pair_mode": "constant", "train.p_pair_start": "0.5"}
    plain_cfg = tiny_config(synth_data, **overrides)
    nhwc_cfg = tiny_config(synth_data, **overrides, **{"train.channels_last": "true"})
    data = TrainingData.load(plain_cfg.data.images, plain_cfg.data.videos, 64)
    plain, _ = losses(plain_cfg, data, 4)
    nhwc, trainer = losses(nhwc_cfg, data, 4)
    assert any(p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous()
               for p in trainer.G.parameters()), "G's convolution weights are not in channels_last"
    assert {m["used_pair"] for m in plain} == {True, False}  # both discriminators ran
    # Step 1 runs the same weights in both layouts: only the summation order differs. Later steps
    # drift a little more: Adam divides by sqrt(v), so near-zero gradients magnify rounding.
    for a, b in zip(plain, nhwc):
        assert a.keys() == b.keys()
        for k, v in a.items():
            if isinstance(v, float):
                rel = 1e-4 if a["step"] == 1 else 2e-2
                assert v == pytest.approx(b[k], rel=rel, abs=1e-6), (a["step"], k)
