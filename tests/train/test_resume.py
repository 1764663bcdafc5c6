"""Exact resume: K steps straight == K/2 steps, checkpoint, K/2 more from the checkpoint."""

from __future__ import annotations

import json

import torch

from deeplandscape.data.training import TrainingData
from deeplandscape.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint
from deeplandscape.train.loop import Trainer, run_worker
from tests.conftest import tiny_config

K = 12


def fast_cfg(synth_data, **overrides):
    # Short phases so the K steps cross a resolution change and a fade-in.
    return tiny_config(synth_data, **{
        "train.batch": '{"8": 8}', "train.phase_kimg": "0.032", "train.fade_kimg": "0.016",
        "train.p_pair_anneal_kimg": "0.02", "train.checkpoint_kimg": "1000", "train.sample_kimg": "0",
        "train.log_every": "4", **overrides})


def assert_same_state(a, b, path="state"):
    """Bitwise equality of nested state dicts (tensors, optimiser state, counters)."""
    assert type(a) is type(b), f"{path}: {type(a)} != {type(b)}"
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same_state(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{path} differs"
    else:
        assert a == b, f"{path}: {a} != {b}"


def test_exact_resume(synth_data, tmp_path):
    quiet = dict(log=lambda line: None)
    from deeplandscape.train.loop import WorkerContext

    straight = run_worker(fast_cfg(synth_data, **{"train.max_steps": str(K)}), str(tmp_path / "a"), WorkerContext(**quiet))
    half = fast_cfg(synth_data, **{"train.max_steps": str(K // 2)})
    run_worker(half, str(tmp_path / "b"), WorkerContext(**quiet))
    assert [c.step for c in list_checkpoints(str(tmp_path / "b"))] == [K // 2]
    resumed = run_worker(half, str(tmp_path / "b"), WorkerContext(**quiet))

    assert resumed.step == straight.step == K
    assert straight.images_seen > 32  # crossed into the 16 px phase
    assert_same_state(straight.state_dict(), resumed.state_dict())
    # And the checkpoint on disk holds exactly that state, loadable with weights_only=True.
    _, progress, state = load_checkpoint(latest_checkpoint(str(tmp_path / "b")).uri)
    assert progress["step"] == K
    assert_same_state(state, straight.state_dict())
    # metrics.jsonl continues without gaps or duplicates.
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [4, 6, 10, 12]


def test_crop_iterations_skip_the_generator_forward(synth_data):
    """On a crop-sampling iteration D_pair's fakes are real crops: G runs once (its own step)."""
    always_crop = fast_cfg(synth_data, **{"train.p_pair_mode": "constant", "train.p_pair_start": "1.0",
                                          "train.crop_prob": "1.0"})
    never_crop = fast_cfg(synth_data, **{"train.p_pair_mode": "constant", "train.p_pair_start": "1.0",
                                         "train.crop_prob": "0.0"})
    data = TrainingData.load(always_crop.data.images, always_crop.data.videos, 64)
    for cfg, expected in ((always_crop, 1), (never_crop, 2)):
        trainer = Trainer(cfg, data)
        calls = []
        trainer.G.register_forward_pre_hook(lambda *a: calls.append(1))
        metrics = trainer.train_step()
        assert metrics["used_pair"] and metrics["used_crop"] == (expected == 1)
        assert len(calls) == expected


def test_training_changes_weights_and_ema_lags(synth_data):
    cfg = fast_cfg(synth_data)
    data = TrainingData.load(cfg.data.images, cfg.data.videos, 64)
    trainer = Trainer(cfg, data)
    before = {k: v.clone() for k, v in trainer.G.state_dict().items()}
    for _ in range(3):
        trainer.train_step()
    after = trainer.G.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any(k.startswith("blocks.0") for k in changed) and any(k.startswith("M.") for k in changed)
    ema = trainer.G_ema.state_dict()
    k = "blocks.1.conv1.conv.weight"
    # EMA sits between the initial and the current weights.
    assert (ema[k] - before[k]).abs().sum() < (after[k] - before[k]).abs().sum()
    assert not torch.equal(ema[k], before[k])


def _old_layout(state):
    """`state` as versions before issue 17 saved it: the 4x4 level's unused convolution
    (weights right after `blocks.0.const`, and its two Adam entries second and third in the
    G optimiser's first group, the ids after them shifted by two)."""
    from collections import OrderedDict

    old = dict(state)
    c = state["G"]["blocks.0.const"].shape[1]
    for name in ("G", "G_ema"):
        d = OrderedDict()
        for k, v in state[name].items():
            d[k] = v
            if k == "blocks.0.const":
                d["blocks.0.conv1.conv.weight"] = torch.randn(c, c, 3, 3)
                d["blocks.0.conv1.conv.bias"] = torch.zeros(c)
        old[name] = d
    opt = state["opt_G"]
    shift = lambda i: i if i < 1 else i + 2  # noqa: E731
    groups = [dict(g, params=[shift(i) for i in g["params"]]) for g in opt["param_groups"]]
    groups[0]["params"][1:1] = [1, 2]
    st = {shift(i): v for i, v in opt["state"].items()}
    st[1] = {k: (torch.randn(c, c, 3, 3) if torch.is_tensor(v) and v.ndim else v) for k, v in st[shift(1)].items()}
    st[2] = {k: (torch.randn(c) if torch.is_tensor(v) and v.ndim else v) for k, v in st[shift(1)].items()}
    old["opt_G"] = {"state": st, "param_groups": groups}
    return old


def test_old_checkpoint_with_the_unused_convolution_loads_and_resumes(synth_data, tmp_path):
    from deeplandscape.train.checkpoint import save_checkpoint

    cfg = fast_cfg(synth_data)
    data = TrainingData.load(cfg.data.images, cfg.data.videos, 64)
    trainer = Trainer(cfg, data)
    for _ in range(2):
        trainer.train_step()
    state = trainer.state_dict()
    old = _old_layout(state)
    assert len(old["opt_G"]["param_groups"][0]["params"]) == len(state["opt_G"]["param_groups"][0]["params"]) + 2
    save_checkpoint(str(tmp_path), cfg, 2, 64, old)
    _, _, loaded = load_checkpoint(latest_checkpoint(str(tmp_path)).uri)
    fresh = Trainer(cfg, data)
    fresh.load_state_dict(loaded)  # strict: G, G_ema and Adam's state line up with today's layout
    assert_same_state(fresh.state_dict(), state)
    fresh.train_step()  # and it trains on
