"""Schedules counted in real images seen: progressive phases, fade-in, the D_pair probability.

Everything here is a pure function of `images_seen` and the config, so a resumed run is in
exactly the same phase, alpha and discriminator ratio as the run it continues.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from deeplandscape.config import P_PAIR_MODES, TrainConfig


@dataclass(frozen=True)
class Phase:
    index: int  # 0 at train.start_resolution
    resolution: int
    images_in_phase: int
    alpha: float  # fade-in of the newest level, 1.0 once faded in (and always in phase 0)


def num_phases(cfg: TrainConfig, final_resolution: int) -> int:
    return int(math.log2(final_resolution // cfg.start_resolution)) + 1


def phase_at(images_seen: int, cfg: TrainConfig, final_resolution: int) -> Phase:
    """Phase k trains at start_resolution * 2^k for phase_kimg; the last phase never ends."""
    phase_len = cfg.phase_kimg * 1000
    index = min(int(images_seen // phase_len), num_phases(cfg, final_resolution) - 1)
    images_in_phase = int(images_seen - index * phase_len)
    if index == 0 or cfg.fade_kimg <= 0:
        alpha = 1.0
    else:
        alpha = min(1.0, images_in_phase / (cfg.fade_kimg * 1000))
    return Phase(index, cfg.start_resolution * 2**index, images_in_phase, alpha)


def per_resolution(table: dict[str, float], resolution: int) -> float:
    """The entry of the largest key <= resolution (keys are resolutions as strings)."""
    keys = sorted(int(k) for k in table if int(k) <= resolution)
    if not keys:
        raise ValueError(f"no entry at or below {resolution} px in {table}")
    return table[str(keys[-1])]


def global_batch(cfg: TrainConfig, resolution: int) -> int:
    return int(per_resolution(cfg.batch, resolution))


def learning_rate(cfg: TrainConfig, resolution: int) -> float:
    return float(per_resolution(cfg.lr, resolution))


def pair_probability(images_seen: int, cfg: TrainConfig, final_resolution: int) -> float:
    """P(use D_pair this iteration).

    Paper 3.1: the static/pairwise split is annealed from 0.5/0.5 to 0.9/0.1 over each
    resolution phase and then kept fixed. With t = min(1, images / anneal) the share of the
    anneal done (`images` counts from the start of the current phase, or of training when
    `p_pair_restart_per_phase` is off), p goes from start to end as `p_pair_mode` says:
        "anneal"    p = start - t (start - end)                      (the paper's linear decay)
        "cosine"    p = end + (start - end) (1 + cos(pi t)) / 2      (slow, fast, slow)
        "step"      p = start while t < 1, then end                  (one drop)
        "constant"  p = start
    """
    if cfg.p_pair_mode == "constant":
        return cfg.p_pair_start
    if cfg.p_pair_restart_per_phase:
        images = phase_at(images_seen, cfg, final_resolution).images_in_phase
    else:
        images = images_seen
    anneal = cfg.p_pair_anneal_kimg * 1000
    t = 1.0 if anneal <= 0 else min(1.0, images / anneal)
    start, end = cfg.p_pair_start, cfg.p_pair_end
    if cfg.p_pair_mode == "anneal":
        return start - t * (start - end)
    if cfg.p_pair_mode == "cosine":
        return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * t))
    if cfg.p_pair_mode == "step":
        return start if t < 1.0 else end
    raise ValueError(f"unknown train.p_pair_mode {cfg.p_pair_mode!r}; one of {P_PAIR_MODES}")
