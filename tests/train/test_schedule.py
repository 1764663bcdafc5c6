"""Progressive phases and the annealed D_pair probability against their closed forms."""

from __future__ import annotations

import pytest

from deeplandscape.config import load_config
from deeplandscape.train.schedule import global_batch, learning_rate, pair_probability, phase_at


@pytest.fixture
def paper():
    return load_config("paper256").train


def closed_form(images_in_phase: float) -> float:
    """REFERENCE.md: p = 0.5 - min(1, images_in_phase / 600k) * (0.5 - 0.1)."""
    return 0.5 - min(1.0, images_in_phase / 600_000) * (0.5 - 0.1)


@pytest.mark.parametrize("images_seen, images_in_phase", [
    (0, 0), (150_000, 150_000), (300_000, 300_000), (599_999, 599_999), (600_000, 600_000),
    (900_000, 900_000),  # after the anneal: fixed at 0.1
    (1_200_000, 0),  # 16 px phase starts: the anneal restarts
    (1_500_000, 300_000), (2_700_000, 300_000), (6_300_000, 300_000),  # 256 px phase
    (9_000_000, 1_800_000),  # 256 px is the last phase: it never restarts
])
def test_pair_probability_matches_closed_form(paper, images_seen, images_in_phase):
    assert pair_probability(images_seen, paper, 256) == pytest.approx(closed_form(images_in_phase), abs=1e-12)


def test_pair_probability_is_0_5_then_0_1_at_each_phase_edge(paper):
    for k in range(6):
        start = k * 1_200_000
        assert pair_probability(start, paper, 256) == pytest.approx(0.5)
        assert pair_probability(start + 1_199_999, paper, 256) == pytest.approx(0.1)


def test_constant_and_non_restarting_modes():
    t = load_config("paper256", {"train.p_pair_mode": "constant", "train.p_pair_start": 0.3}).train
    assert {pair_probability(n, t, 256) for n in (0, 500_000, 5_000_000)} == {0.3}
    t = load_config("paper256", {"train.p_pair_restart_per_phase": "false"}).train
    assert pair_probability(1_200_000, t, 256) == pytest.approx(0.1)  # no restart at 16 px
    assert pair_probability(300_000, t, 256) == pytest.approx(0.3)


def test_phases_resolution_and_fade(paper):
    assert phase_at(0, paper, 256) == phase_at(0, paper, 256)
    p = phase_at(1_000_000, paper, 256)
    assert (p.index, p.resolution, p.alpha) == (0, 8, 1.0)  # the first phase has nothing to fade
    p = phase_at(1_200_000 + 300_000, paper, 256)
    assert (p.resolution, p.alpha) == (16, 0.5)
    p = phase_at(1_200_000 + 900_000, paper, 256)
    assert (p.resolution, p.alpha) == (16, 1.0)
    p = phase_at(100_000_000, paper, 256)
    assert (p.index, p.resolution, p.alpha) == (5, 256, 1.0)


def test_batch_and_lr_per_resolution(paper):
    assert [global_batch(paper, r) for r in (8, 16, 32, 64, 128, 256)] == [256, 128, 64, 32, 32, 32]
    assert [learning_rate(paper, r) for r in (8, 64, 128, 256, 512)] == [0.001, 0.001, 0.0015, 0.002, 0.003]


@pytest.mark.parametrize("images_in_phase", [0, 100_000, 300_000, 450_000, 599_999, 600_000, 900_000])
def test_cosine_and_step_modes_match_their_closed_forms(images_in_phase):
    import math

    cosine = load_config("paper256", {"train.p_pair_mode": "cosine"}).train
    step = load_config("paper256", {"train.p_pair_mode": "step"}).train
    t = min(1.0, images_in_phase / 600_000)
    for k in (0, 3):  # the first phase and a later one: both restart at the phase start
        n = k * 1_200_000 + images_in_phase
        assert pair_probability(n, cosine, 256) == pytest.approx(0.1 + 0.4 * (1 + math.cos(math.pi * t)) / 2,
                                                                   abs=1e-12)
        assert pair_probability(n, step, 256) == (0.5 if images_in_phase < 600_000 else 0.1)


def test_every_mode_starts_at_start_ends_at_end_and_never_rises():
    for mode in ("anneal", "cosine", "step"):
        t = load_config("paper256", {"train.p_pair_mode": mode, "train.p_pair_start": 0.7,
                                     "train.p_pair_end": 0.2, "train.p_pair_restart_per_phase": "false"}).train
        p = [pair_probability(n, t, 256) for n in range(0, 700_001, 10_000)]
        assert p[0] == pytest.approx(0.7) and p[-1] == pytest.approx(0.2), mode
        assert all(b <= a + 1e-12 for a, b in zip(p, p[1:])), mode
    assert pair_probability(300_000, t, 256) == 0.7  # step: flat until the anneal length, t is "step" here


def test_unknown_mode_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="anneal, cosine, step, constant"):
        load_config("paper256", {"train.p_pair_mode": "exponential"})
