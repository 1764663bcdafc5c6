"""Checkpoints: a directory holding `config.json` and `state.pt` (tensors only).

    RUN/checkpoints/step-00001234/config.json   resolved config + progress (written last)
    RUN/checkpoints/step-00001234/state.pt      networks and optimisers, weights_only-loadable

`config.json` is written after `state.pt`, so a directory without it is an interrupted
write and is ignored. The RNG needs no saving: every step draws from generators seeded by
(seed, step), so the step number restores it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import torch

from deeplandscape import storage
from deeplandscape.config import Config


@dataclass
class CheckpointInfo:
    uri: str
    step: int
    images_seen: int


def checkpoints_dir(run_dir: str) -> str:
    return storage.join(run_dir, "checkpoints")


def list_checkpoints(run_dir: str) -> list[CheckpointInfo]:
    """Complete checkpoints of a run, oldest first."""
    out = []
    for name in storage.list_dirs(checkpoints_dir(run_dir)):
        if not name.startswith("step-"):
            continue
        uri = storage.join(checkpoints_dir(run_dir), name)
        meta_uri = storage.join(uri, "config.json")
        if not storage.exists(meta_uri):
            continue
        progress = json.loads(storage.read_text(meta_uri))["progress"]
        out.append(CheckpointInfo(uri, int(progress["step"]), int(progress["images_seen"])))
    return sorted(out, key=lambda c: c.step)


def latest_checkpoint(run_dir: str) -> CheckpointInfo | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def save_checkpoint(run_dir: str, cfg: Config, step: int, images_seen: int, state: dict[str, Any],
                    keep: int = 0) -> CheckpointInfo:
    uri = storage.join(checkpoints_dir(run_dir), f"step-{step:08d}")
    storage.save_tensors(storage.join(uri, "state.pt"), state)
    meta = {"progress": {"step": step, "images_seen": images_seen, "kimg": images_seen / 1000}, **cfg.to_dict()}
    storage.write_text(storage.join(uri, "config.json"), json.dumps(meta, indent=2, sort_keys=True))
    if keep > 0:
        for old in list_checkpoints(run_dir)[:-keep]:
            storage.delete_dir(old.uri)
    return CheckpointInfo(uri, step, images_seen)


def load_checkpoint(uri: str, map_location: str | torch.device = "cpu") -> tuple[Config, dict, dict[str, Any]]:
    """(config, progress, state) of a checkpoint directory, in today's layout (`upgrade_state`)."""
    meta_uri = storage.join(uri, "config.json")
    if not storage.exists(meta_uri):
        raise FileNotFoundError(f"{uri} is not a complete checkpoint (no config.json)")
    meta = json.loads(storage.read_text(meta_uri))
    progress = meta.pop("progress")
    state = storage.load_tensors(storage.join(uri, "state.pt"), map_location=map_location)
    return Config.from_dict(meta), progress, upgrade_state(state)


# Tensors older versions saved that today's networks do not have: the 4x4 level's first
# convolution, which its forward pass never ran (the level starts from the learned constant).
UNUSED_G_KEYS = ("blocks.0.conv1.conv.weight", "blocks.0.conv1.conv.bias")


def upgrade_state(state: dict[str, Any]) -> dict[str, Any]:
    """Drop `UNUSED_G_KEYS` from the generators and their Adam state, in place.

    The G optimiser's first parameter group is `G.blocks.parameters()`, in the order of the
    state dict's `blocks.*` keys, so a dropped key's position there is its position in the group.
    """
    G = state.get("G")
    if G is None or UNUSED_G_KEYS[0] not in G:
        return state
    block_keys = [k for k in G if k.startswith("blocks.")]
    drop = {block_keys.index(k) for k in UNUSED_G_KEYS}
    opt = state.get("opt_G")
    if opt is not None:
        group = opt["param_groups"][0]
        gone = [p for i, p in enumerate(group["params"]) if i in drop]
        group["params"] = [p for i, p in enumerate(group["params"]) if i not in drop]
        for p in gone:
            opt["state"].pop(p, None)
    for name in ("G", "G_ema"):
        for k in UNUSED_G_KEYS:
            state.get(name, {}).pop(k, None)
    return state


def resume_latest(run_dir: str, target, device: str | torch.device, log=None, what: str = "") -> CheckpointInfo | None:
    """Load the state of `run_dir`'s latest checkpoint into `target` (its `load_state_dict`) and
    say so through `log`; None (nothing loaded) when the run has no checkpoint yet."""
    ckpt = latest_checkpoint(run_dir)
    if ckpt is not None:
        target.load_state_dict(load_checkpoint(ckpt.uri, map_location=device)[2])
        if log is not None:
            log(f"{what}: resumed from {ckpt.uri} (step {ckpt.step})")
    return ckpt
