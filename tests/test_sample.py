"""Sampling videos: static latents fixed, dynamic ones moving; batching; mp4 round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deeplandscape.animate.homography import CLOCK_DIRECTIONS, Motion
from deeplandscape.render import Animation, VideoOutputs, interpolate, render_to_file, render_video
from deeplandscape.video import probe_video
from tests.conftest import noisy_tiny_generator

STILL = Motion("still", ((0.0, 0.0),) * 4)


@pytest.fixture(scope="module")
def G():
    return noisy_tiny_generator()


def frames_of(G, animation, frames=8, batch=16):
    return np.concatenate(list(render_video(G, 3, frames, 32, 1.0, animation, batch=batch)))


def test_identity_homography_with_fixed_z_dyn_gives_identical_frames(G):
    video = frames_of(G, Animation(motion=STILL, interpolate_z_dyn=False, authors_mode=False))
    assert all(np.array_equal(video[0], f) for f in video[1:])
    moving = frames_of(G, Animation(motion=CLOCK_DIRECTIONS["3h"], speed=4.0, interpolate_z_dyn=False))
    assert np.abs(moving[-1].astype(int) - moving[0]).mean() > 0.5, "S_dyn motion must change the frames"
    lit = frames_of(G, Animation(motion=STILL, interpolate_z_dyn=True, authors_mode=False))
    assert np.abs(lit[-1].astype(int) - lit[0]).mean() > 0.5, "z_dyn interpolation must change the frames"


def test_batching_frames_does_not_change_them(G):
    animation = Animation(motion=CLOCK_DIRECTIONS["1h"], speed=2.5)
    one_batch = frames_of(G, animation, frames=10, batch=16)
    chunks = frames_of(G, animation, frames=10, batch=3)
    assert one_batch.shape == (10, 32, 32, 3)
    np.testing.assert_allclose(one_batch.astype(int), chunks.astype(int), atol=1)


def test_rendered_mp4_decodes_to_the_right_frames_size_and_fps(G, tmp_path):
    path = render_to_file(G, 32, 1.0, tmp_path / "v.mp4", 0, 45, Animation(), VideoOutputs(fps=30, scale=2))
    info = probe_video(path)
    assert (info.num_frames, info.width, info.height, info.fps) == (45, 64, 64, 30)
    assert (tmp_path / "v.jpg").is_file()


def test_z_dyn_slerp_ends_at_both_samples_and_keeps_their_norm():
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(1, 3, generator=gen)
    b = torch.randn(1, 3, generator=gen)
    b = b * (a.norm() / b.norm())  # same norm: the great circle keeps it all the way
    t = torch.linspace(0, 1, 11)[:, None]
    path = interpolate(a, b, t, "slerp")
    torch.testing.assert_close(path[0:1], a, atol=1e-6, rtol=0)
    torch.testing.assert_close(path[-1:], b, atol=1e-6, rtol=0)
    torch.testing.assert_close(path.norm(dim=1), a.norm().expand(11), atol=1e-5, rtol=0)
    assert float(interpolate(a, b, t, "linear")[5].norm()) < float(a.norm()) - 1e-3  # linear cuts the corner
