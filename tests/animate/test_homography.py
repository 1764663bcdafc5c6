"""Homography animation of S_dyn (paper 3.1 "Sampling videos"): closed-form and warp checks."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from deeplandscape.animate.homography import (
    CLOCK_DIRECTIONS,
    SPEEDS,
    TOP_SPEED,
    Motion,
    PixelSpeed,
    anchor_points,
    angle_motion,
    clock_motion,
    direction_motion,
    parse_speed,
    speed_factor,
    apply_homography,
    frame_homographies,
    homography_from_points,
    load_motions,
    matrix_power,
    reflection_homography,
    resolve_direction,
    save_motions,
    sky_homography,
)
from deeplandscape.animate.warp import animate_noise, warp_maps, warp_noise_like_authors

# A motion with translation, zoom and perspective in it, so that every term of H matters.
SKEWED = Motion("skewed", ((0.012, -0.008), (0.02, 0.004), (0.001, 0.0), (-0.0005, 0.0)))


def _pixel_to_norm(v: float, size: int) -> float:
    return (2 * v + 1) / size - 1


def _blob(size: int, cx: float, cy: float, sigma: float = 2.0) -> torch.Tensor:
    """A Gaussian blob [1, 1, size, size] centred at normalised (cx, cy)."""
    c = (torch.arange(size, dtype=torch.float64) * 2 + 1) / size - 1
    yy, xx = torch.meshgrid(c, c, indexing="ij")
    s = 2 * sigma / size
    return torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s)).float()[None, None]


def _centroid(img: torch.Tensor, rows: slice) -> tuple[float, float]:
    """Normalised (x, y) centroid of img [H, W] restricted to `rows`."""
    h, w = img.shape
    part = img.double()[rows]
    ys = torch.arange(h, dtype=torch.float64)[rows]
    xs = torch.arange(w, dtype=torch.float64)
    m = part.sum()
    x = float((part.sum(0) * xs).sum() / m)
    y = float((part.sum(1) * ys).sum() / m)
    return _pixel_to_norm(x, w), _pixel_to_norm(y, h)


# ---------------------------------------------------------------- homographies

def test_homography_maps_anchors_and_agrees_with_opencv() -> None:
    rng = np.random.default_rng(0)
    src = anchor_points(0.4).astype(np.float32).astype(np.float64)
    dst = (src + rng.uniform(-0.05, 0.05, size=(4, 2))).astype(np.float32).astype(np.float64)
    H = homography_from_points(src, dst)
    assert H.dtype == np.float64 and H[2, 2] == 1.0
    np.testing.assert_allclose(apply_homography(H, src), dst, atol=1e-12)
    H_cv = cv2.getPerspectiveTransform(src.astype(np.float32), dst.astype(np.float32))
    np.testing.assert_allclose(H, H_cv / H_cv[2, 2], atol=1e-9)


def test_power_equals_repeated_application() -> None:
    H = sky_homography(SKEWED, 0.55)
    pts = np.random.default_rng(1).uniform(-1, 1, size=(50, 2))
    q = pts
    for n in range(1, 31):
        q = apply_homography(H, q)
        np.testing.assert_allclose(apply_homography(matrix_power(H, n), pts), q, atol=1e-10)
    np.testing.assert_allclose(matrix_power(H, 0), np.eye(3))
    product = matrix_power(H, -3) @ matrix_power(H, 3)
    np.testing.assert_allclose(product / product[2, 2], np.eye(3), atol=1e-12)


def test_frame_homographies_are_powers() -> None:
    sky, water = frame_homographies(SKEWED, 0.5, 12, speed=2.5)
    assert sky.shape == water.shape == (12, 3, 3)
    np.testing.assert_allclose(sky[0], np.eye(3), atol=1e-15)
    np.testing.assert_allclose(water[0], np.eye(3), atol=1e-15)
    H = sky_homography(SKEWED.scaled(2.5), 0.5)
    for i in range(12):
        np.testing.assert_allclose(sky[i], matrix_power(H, i), atol=1e-12)
        np.testing.assert_allclose(water[i], matrix_power(reflection_homography(H, 0.5), i), atol=1e-12)
    # Frame indices give the same matrices as a count: chunks of a video line up.
    sky_chunk, water_chunk = frame_homographies(SKEWED, 0.5, range(7, 12), speed=2.5)
    np.testing.assert_allclose(sky_chunk, sky[7:], atol=1e-12)
    np.testing.assert_allclose(water_chunk, water[7:], atol=1e-12)


def test_horizon_line_stays_put() -> None:
    for horizon in (0.3, 0.5, 0.8):
        yh = 2 * horizon - 1
        line = np.stack([np.linspace(-1, 1, 9), np.full(9, yh)], axis=1)
        for motion in CLOCK_DIRECTIONS.values():
            H = sky_homography(motion.scaled(4.0), horizon)
            np.testing.assert_allclose(apply_homography(H, line)[:, 1], yh, atol=1e-12)


def test_water_mirrors_the_vertical_motion() -> None:
    horizon = 0.45
    yh = 2 * horizon - 1
    sky, water = frame_homographies(SKEWED, horizon, 6, speed=2.0)
    above = np.array([[-0.6, -0.7], [0.2, -0.3], [0.8, -0.95]])
    below = above * [1, -1] + [0, 2 * yh]  # mirrored about y = yh
    for i in range(1, 6):
        d_sky = apply_homography(sky[i], above) - above
        d_water = apply_homography(water[i], below) - below
        assert np.abs(d_sky[:, 1]).max() > 1e-3  # the test motion does move vertically
        np.testing.assert_allclose(d_water[:, 1], -d_sky[:, 1], atol=1e-12)
        np.testing.assert_allclose(d_water[:, 0], d_sky[:, 0], atol=1e-12)


def test_clock_directions_table() -> None:
    assert list(CLOCK_DIRECTIONS) == [f"{h}h" for h in range(1, 13)]
    assert SPEEDS == {"x0.5": 0.5, "x1": 1.0, "x2.5": 2.5, "x4": 4.0}
    for name, m in CLOCK_DIRECTIONS.items():
        d = m.array()
        assert m.name == name
        top = np.linalg.norm(d[:2], axis=1)
        assert np.all((top >= 0.004) & (top <= 0.02)), (name, top)
        np.testing.assert_allclose(d[2:, 1], 0.0)  # the horizon line stays put
        np.testing.assert_allclose(np.abs(d[2:, 0]), np.abs(d[:2, 0]) / 20, atol=1e-15)  # parallax
    assert CLOCK_DIRECTIONS["3h"].array()[:, 0].min() > 0 and np.all(CLOCK_DIRECTIONS["3h"].array()[:, 1] == 0)
    np.testing.assert_allclose(CLOCK_DIRECTIONS["9h"].array(), -CLOCK_DIRECTIONS["3h"].array())
    np.testing.assert_allclose(CLOCK_DIRECTIONS["6h"].array(), -CLOCK_DIRECTIONS["12h"].array())
    lt, rt = CLOCK_DIRECTIONS["12h"].array()[:2]
    assert lt[0] < 0 < rt[0] and lt[1] < 0 and rt[1] < 0  # up and outwards


# ---------------------------------------------------------------- warping

@pytest.mark.parametrize("hour, axis, sign", [("3h", 0, 1), ("9h", 0, -1), ("12h", 1, -1), ("6h", 1, 1)])
def test_clock_direction_moves_a_blob(hour: str, axis: int, sign: int) -> None:
    size, horizon, frames = 64, 0.5, [0, 4, 8, 12]
    start = (0.1, -0.45)  # above the horizon, away from the borders
    sky, water = frame_homographies(CLOCK_DIRECTIONS[hour], horizon, frames, speed=SPEEDS["x4"])
    maps = _blob(size, *start).expand(len(frames), -1, -1, -1)
    # Zero padding: the reflected copy of the blob beyond the top border must not enter.
    out = warp_maps(maps, sky, water, horizon, padding="zeros")  # [T, 1, 64, 64]
    sky_rows = slice(0, size // 2)
    pos = np.array([_centroid(out[i, 0], sky_rows) for i in range(len(frames))])
    step = np.diff(pos[:, axis])
    assert np.all(sign * step > 0.01), (hour, pos)  # > 0.3 px per 4 frames in the right direction
    # ... and it lands where H^i sends the blob's centre (forward convention), within half a
    # pixel (the zoom of 12h / 6h grows or shrinks the blob unevenly, biasing its centroid).
    expect = np.array([apply_homography(H, np.array(start)) for H in sky])
    np.testing.assert_allclose(pos, expect, atol=2 * 0.5 / size)


def test_identity_warp_returns_input() -> None:
    x = torch.randn(3, 1, 16, 24, generator=torch.Generator().manual_seed(0))
    eye = np.eye(3)
    torch.testing.assert_close(warp_maps(x, eye, eye, 0.5), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(warp_maps(x, torch.eye(3).expand(3, 3, 3), None, 0.3), x, atol=1e-5, rtol=0)


def test_water_half_is_the_mirror_image() -> None:
    # A map symmetric about the horizon row stays symmetric: reflections follow the sky.
    top = torch.randn(2, 1, 16, 32, generator=torch.Generator().manual_seed(3))
    x = torch.cat([top, top.flip(-2)], dim=-2)  # [2, 1, 32, 32], mirror line at horizon 0.5
    sky, water = frame_homographies(SKEWED, 0.5, [3, 9], speed=1.0)
    out = warp_maps(x, sky, water, 0.5)
    torch.testing.assert_close(out[..., 16:, :], out[..., :16, :].flip(-2), atol=1e-5, rtol=0)
    assert (out - x).abs().max() > 0.1  # it did move


def test_constant_map_stays_constant() -> None:
    x = torch.full((2, 1, 8, 8), 0.7)
    sky, water = frame_homographies(CLOCK_DIRECTIONS["6h"], 0.5, [5, 40], speed=4.0)
    torch.testing.assert_close(warp_maps(x, sky, water, 0.5), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(warp_noise_like_authors(x, sky, water, 0.5, out_size=32), x, atol=1e-5, rtol=0)


def test_authors_warp_keeps_mean_and_std() -> None:
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 1.3 + 0.2
    sky, water = frame_homographies(CLOCK_DIRECTIONS["1h"], 0.6, [0, 3, 10, 30], speed=2.5)
    out = warp_noise_like_authors(x, sky, water, 0.6, out_size=64)
    assert out.shape == x.shape
    torch.testing.assert_close(out.mean((1, 2, 3)), x.mean((1, 2, 3)), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.std((1, 2, 3)), x.std((1, 2, 3)), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("authors_mode", [False, True])
def test_animate_noise_is_h_power_of_frame_zero(authors_mode: bool) -> None:
    gen = torch.Generator().manual_seed(2)
    S_dyn = [torch.randn(1, 1, r, r, generator=gen) for r in (4, 8, 16, 32)]
    motion, horizon, speed = CLOCK_DIRECTIONS["2h"], 0.5, 2.5
    full = animate_noise(S_dyn, motion, horizon, range(10), speed, authors_mode, out_size=32)
    chunk = animate_noise(S_dyn, motion, horizon, range(6, 10), speed, authors_mode, out_size=32)
    sky, water = frame_homographies(motion, horizon, 10, speed)
    for s, f, c in zip(S_dyn, full, chunk):
        r = s.shape[-1]
        assert f.shape == (10, 1, r, r) and c.shape == (4, 1, r, r)
        torch.testing.assert_close(c, f[6:], atol=1e-5, rtol=0)  # chunks do not depend on history
        maps = s.expand(10, -1, -1, -1)
        if authors_mode:
            ref = warp_noise_like_authors(maps, sky, water, horizon, 32)
        else:
            ref = warp_maps(maps, sky, water, horizon)
        torch.testing.assert_close(f, ref, atol=1e-5, rtol=0)
        torch.testing.assert_close(f[0:1], s, atol=1e-5, rtol=0)  # frame 0 is S_dyn itself, both modes
        assert (f[1] - s[0]).abs().mean() < 0.5 * (f[9] - s[0]).abs().mean()  # and frames move on gradually


@pytest.mark.parametrize("authors_mode", [False, True])
def test_a_still_animation_keeps_s_dyn(authors_mode: bool) -> None:
    """Speed 0: every frame's S_dyn is frame 0's, to float error (no resampling drift)."""
    S_dyn = [torch.randn(1, 1, r, r, generator=torch.Generator().manual_seed(r)) for r in (4, 8, 16, 32)]
    for s, f in zip(S_dyn, animate_noise(S_dyn, CLOCK_DIRECTIONS["3h"], 0.4, range(5), 0.0, authors_mode, 32)):
        torch.testing.assert_close(f, s.expand(5, -1, -1, -1), atol=1e-5, rtol=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_warp_on_cuda_matches_cpu() -> None:
    x = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(4))
    sky, water = frame_homographies(SKEWED, 0.5, 3, speed=4.0)
    out = warp_noise_like_authors(x.cuda(), torch.from_numpy(sky).cuda(), water, 0.5, 64)
    torch.testing.assert_close(out.cpu(), warp_noise_like_authors(x, sky, water, 0.5, 64), atol=1e-4, rtol=0)


# ---------------------------------------------------------------- motions as data

def test_motions_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "motions.json"
    motions = {"skewed": SKEWED, "12h": CLOCK_DIRECTIONS["12h"]}
    save_motions(path, motions)
    assert load_motions(path) == motions


@pytest.mark.parametrize("bad", [
    [[0.01, 0.0], [0.01, 0.0], [0.0, 0.0]],  # three points
    [[0.01, 0.0], [0.01], [0.0, 0.0], [0.0, 0.0]],  # a short pair
    [[0.01, "up"], [0.01, 0.0], [0.0, 0.0], [0.0, 0.0]],  # not a number
    {"dx": 1},
])
def test_malformed_motion_names_file_and_entry(tmp_path: Path, bad: object) -> None:
    path = tmp_path / "user.json"
    path.write_text(json.dumps({"ok": [[0.0, 0.0]] * 4, "broken-one": bad}))
    with pytest.raises(ValueError, match=r"user\.json.*'broken-one'"):
        load_motions(path)


def test_resolve_direction() -> None:
    draws = [resolve_direction("random", np.random.default_rng(123)).name for _ in range(3)]
    assert len(set(draws)) == 1 and draws[0] in CLOCK_DIRECTIONS
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)
    seq_a = [resolve_direction("random", rng_a).name for _ in range(20)]
    assert seq_a == [resolve_direction("random", rng_b).name for _ in range(20)]
    assert len(set(seq_a)) > 3
    assert resolve_direction("3h", np.random.default_rng(0)) is CLOCK_DIRECTIONS["3h"]
    assert resolve_direction("skewed", np.random.default_rng(0), extra={"skewed": SKEWED}) == SKEWED
    with pytest.raises(ValueError, match=r"'13h'.*random.*1h.*12h"):
        resolve_direction("13h", np.random.default_rng(0))


# ---------------------------------------------------------------- units people think in

def test_angles_are_the_clock_directions_between_the_hours() -> None:
    for hour in range(1, 13):  # 3h is 0 degrees, 12h is 90: (3 - hour) x 30
        assert angle_motion((3 - hour) * 30).displacements == clock_motion(hour).displacements
    assert direction_motion("90deg").displacements == CLOCK_DIRECTIONS["12h"].displacements
    assert direction_motion("-90deg").name == "270deg" == direction_motion("270°").name
    assert direction_motion("6h") is CLOCK_DIRECTIONS["6h"]
    half = direction_motion("45deg").array()  # halfway between 3h (right) and 12h (up)
    np.testing.assert_allclose(half, (CLOCK_DIRECTIONS["3h"].array() * np.cos(np.pi / 4)
                                      + CLOCK_DIRECTIONS["12h"].array() * np.sin(np.pi / 4)), atol=1e-12)
    np.testing.assert_allclose(half[2:, 1], 0.0)  # the horizon line stays put
    for bad in ("up", "45", "45 degrees", "13h"):
        with pytest.raises(ValueError, match=f"unknown direction '{bad}'.*angle in degrees"):
            direction_motion(bad)


def test_speeds_in_factors_and_in_pixels_per_second() -> None:
    assert parse_speed("2.5") == parse_speed("x2.5") == SPEEDS["x2.5"] == 2.5
    assert parse_speed("12px/s") == PixelSpeed(12.0) and parse_speed("0.5 px/s") == PixelSpeed(0.5)
    for bad in ("fast", "-1", "12px", "12 px/min", "nan"):
        with pytest.raises(ValueError, match=f"speed '{bad}'"):
            parse_speed(bad)
    assert speed_factor(2.5, 128, 30) == 2.5  # a factor stays what it is
    factor = speed_factor(PixelSpeed(12.0), 128, 30)
    assert factor == pytest.approx(12 / (TOP_SPEED * 64 * 30))
    # At that factor the top corners of the pure directions move 12 px per second at 128 px, 30 fps.
    for hour in ("3h", "12h"):
        sky, _ = frame_homographies(CLOCK_DIRECTIONS[hour], 0.5, [0, 30], speed=factor)
        corner = np.array([1.0, -1.0])
        moved = apply_homography(sky[1], corner)  # one second later (H^30)
        step = apply_homography(frame_homographies(CLOCK_DIRECTIONS[hour], 0.5, [1], speed=factor)[0][0], corner)
        assert np.linalg.norm(step - corner) * 64 * 30 == pytest.approx(12.0, rel=1e-9)  # frame 0 -> 1
        assert np.linalg.norm(moved - corner) * 64 == pytest.approx(12.0, rel=0.2)  # 30 frames: H^30 bends a little
