"""The two sample checks of issue 17: a drawn border, and motion on sky vs ground."""

from __future__ import annotations

import numpy as np
import pytest

from deeplandscape.evaluate.video_checks import frame_change, median_change, ring_contrast


def textured(n: int = 8, size: int = 32, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(60, 200, size=(n, size, size, 3)).astype(np.uint8)


def test_a_drawn_frame_raises_the_border_contrast_over_the_interior():
    plain = textured()
    framed = plain.copy()
    framed[:, 0, :] = framed[:, -1, :] = framed[:, :, 0] = framed[:, :, -1] = (255, 0, 255)  # a magenta frame
    a, b = ring_contrast(plain), ring_contrast(framed)
    assert 0.8 < a.border_ratio < 1.25  # texture alone: the border like the inside
    assert b.border_ratio > 2 * a.border_ratio and b.interior == a.interior
    assert b.outer_chroma > 200 > a.outer_chroma
    with pytest.raises(ValueError, match="too small"):
        ring_contrast(textured(size=12))


def test_frame_change_separates_sky_from_ground():
    video = np.repeat(textured(1), 5, axis=0)  # 5 identical frames
    sky = np.zeros((32, 32), bool)
    sky[:12] = True
    video[1:, :12] = video[1:, :12] // 2  # the sky darkens after frame 0, the ground stays
    c = frame_change(video, sky)
    assert c.dynamic > 20 and c.static == 0 and c.ratio == float("inf")
    video[1:, 20:] += 1  # the ground moves by one level
    c = frame_change(video, sky)
    assert c.static == pytest.approx(12 / 20) and c.ratio == pytest.approx(c.dynamic / c.static)
    assert median_change([c, c, frame_change(video[:2], sky)]).ratio == pytest.approx(c.ratio)
    with pytest.raises(ValueError, match="both dynamic and static"):
        frame_change(video, np.ones((32, 32), bool))
