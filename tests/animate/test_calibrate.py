"""Motion calibration (deeplandscape.animate.calibrate) against synthetic time-lapses whose
cloud drift is known exactly (data.synth), through H.264 and Ray Data."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from deeplandscape.animate.calibrate import (
    VideoMotion,
    calibrate,
    list_videos,
    measure_motion,
    measure_video,
    motions_from_measurements,
    report_path_for,
    run_calibration,
    sky_region,
)
from deeplandscape.animate.homography import HORIZON_PARALLAX, clock_motion, load_motions
from deeplandscape.data.synth import mask_path_for, render_video, sample_scene
from deeplandscape.video import read_video, write_video

SIZE, FRAMES = 64, 12

# (scene seed, drift px/frame, water): day, sunset and night skies, with and without water.
# Three of four drift to the right, so "3h" is the dominant direction.
VIDEOS = [
    (1, (1.5, 0.0), False),
    (4, (2.0, 0.0), True),
    (2, (-1.5, 0.0), False),
    (8, (0.0, -1.0), True),
]


def _render(seed: int, drift: tuple[float, float], water: bool, size: int = SIZE, frames: int = FRAMES,
            light_amp: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """A scene with a known drift and a visible light swing: (video [T, S, S, 3], mask [S, S])."""
    params = sample_scene(np.random.default_rng(seed))
    params = dataclasses.replace(params, drift=drift, has_water=water, light_amp=light_amp, light_rate=1 / 40)
    return render_video(params, frames, size)


def _close(measured: float, true: float, rel: float = 0.2, abs_px: float = 0.3) -> bool:
    return abs(measured - true) <= max(rel * abs(true), abs_px)


def _write(folder: Path, name: str, video: np.ndarray, mask: np.ndarray) -> Path:
    path = folder / f"{name}.mp4"
    write_video(path, video, fps=15)
    Image.fromarray(mask.astype(np.uint8) * 255).save(mask_path_for(path))
    return path


# ---------------------------------------------------------------------------
# pure functions (no Ray)


@pytest.mark.parametrize("seed, drift, water", VIDEOS)
def test_measure_motion_recovers_known_drift_through_h264(tmp_path: Path, seed: int, drift: tuple[float, float],
                                                          water: bool) -> None:
    video, mask = _render(seed, drift, water)
    write_video(tmp_path / "v.mp4", video, fps=15)
    decoded, _ = read_video(tmp_path / "v.mp4")  # [T, S, S, 3], with compression artefacts
    dx, dy, stats = measure_motion(decoded, mask)
    assert _close(dx, drift[0]) and _close(dy, drift[1]), (dx, dy, drift)
    for est, true in zip((dx, dy), drift):  # the direction, not only the size
        if true:
            assert math.copysign(1, est) == math.copysign(1, true)
    assert stats["pairs"] == FRAMES - 1 and stats["frames_used"] == 1.0 and 0 < stats["pixels_used"] < 1


def test_measure_motion_without_mask_uses_the_top_of_the_frame() -> None:
    video, _ = _render(1, (-1.2, 0.6), False)
    dx, dy, stats = measure_motion(video, None)
    assert _close(dx, -1.2) and _close(dy, 0.6), (dx, dy)
    assert stats["region_fraction"] == pytest.approx(1 / 3, abs=0.02)


def test_measure_motion_downscale_and_step_keep_video_pixels_per_frame() -> None:
    # 2 px/frame at 128 px measured on a 64 px copy and on frames 2 apart: still 2 px per
    # frame of the 128 px video (a missing rescale would read 1.0, a missing /step 4.0).
    video, mask = _render(1, (2.0, 0.0), False, size=128)
    dx, _, stats = measure_motion(video, mask, max_side=64)
    assert stats["scale"] == 0.5 and dx == pytest.approx(2.0, rel=0.12)
    dx2, _, stats2 = measure_motion(video, mask, max_side=64, step=2)
    assert stats2["pairs"] == FRAMES - 2 and dx2 == pytest.approx(2.0, rel=0.12)


def test_exposure_flicker_is_not_motion() -> None:
    # Per-frame exposure jumps of up to 2x (time-lapse flicker): unnormalised grey levels
    # read as a 20% slower drift here; per-frame normalisation keeps the drift.
    gains = np.array([1.0, 0.6, 0.9, 0.5, 1.0, 0.7, 0.55, 0.95, 0.6, 1.0, 0.5, 0.8])[:, None, None, None]
    for drift in [(0.0, 0.0), (1.5, 0.0), (0.0, -1.0)]:
        video, mask = _render(2, drift, False, light_amp=0.0)
        flicker = np.clip(video * gains, 0, 255).astype(np.uint8)
        dx, dy, _ = measure_motion(flicker, mask)
        assert abs(dx - drift[0]) < 0.1 and abs(dy - drift[1]) < 0.1, (drift, dx, dy)


def test_sky_region_stops_at_the_horizon_so_water_is_not_measured() -> None:
    params = dataclasses.replace(sample_scene(np.random.default_rng(4)), has_water=True)
    _, mask = render_video(params, 1, SIZE)
    sky = sky_region(mask)
    horizon_row = int(params.horizon * SIZE)
    assert mask[horizon_row + 2 :].any(), "the scene should have water below the horizon"
    assert sky.any() and not sky[horizon_row:].any()
    assert not (sky & ~mask).any()
    # Mirrored water drifts (dx, -dy): measured with the sky alone, dy keeps its sign.
    video, mask = _render(4, (0.0, 1.0), True)
    _, dy, _ = measure_motion(video, mask)
    assert _close(dy, 1.0)


def test_measure_motion_rejects_too_few_frames_and_empty_masks() -> None:
    video, mask = _render(1, (1.0, 0.0), False, frames=2)
    with pytest.raises(ValueError, match="too few frames"):
        measure_motion(video[:1], mask)
    with pytest.raises(ValueError, match="too few frames"):
        measure_motion(video, mask, step=2)
    with pytest.raises(ValueError, match="empty mask"):
        measure_motion(video, np.zeros_like(mask))


def _vm(uri: str, dx: float, dy: float) -> VideoMotion:
    return VideoMotion(uri=uri, dx=dx, dy=dy, speed=math.hypot(dx, dy), angle_deg=math.degrees(math.atan2(-dy, dx)))


def test_motions_from_measurements_scale_clock_and_pick_dominant_directions() -> None:
    measured = [
        _vm("a", 0.04, 0.0), _vm("b", 0.06, -0.005), _vm("c", 0.05, 0.004),  # right ("3h")
        _vm("d", 0.0, -0.02), _vm("e", 0.0, -0.03),  # up ("12h")
        _vm("f", -0.01, 0.0),  # left ("9h")
        VideoMotion(uri="bad", error="VideoError: broken"),
    ]
    motions, summary = motions_from_measurements(measured, n_dominant=2)
    median = float(np.median([m.speed for m in measured if m.ok]))
    assert summary["measured"] == 6 and summary["failed"] == 1
    assert summary["median_speed"] == pytest.approx(median)
    assert summary["median_speed_px_at_256"] == pytest.approx(median * 128)
    assert summary["direction_counts"]["3h"] == 3 and summary["direction_counts"]["12h"] == 2
    # The clock directions are the hand-made ones at the measured speed: "3h" moves its top
    # corners exactly the median speed to the right.
    for h in range(1, 13):
        assert motions[f"{h}h"] == clock_motion(h, top_speed=median)
    np.testing.assert_allclose(motions["3h"].array()[:2], [[median, 0.0], [median, 0.0]])
    # measured-1: right, at the right bin's median speed; horizon points slower, dy = 0.
    m1 = motions["measured-1"].array()
    right_speed = float(np.median([m.speed for m in measured[:3]]))
    assert m1[0, 0] == pytest.approx(right_speed, rel=0.01) and abs(m1[0, 1]) < 0.1 * right_speed
    np.testing.assert_allclose(m1[2:, 0], m1[:2, 0] / HORIZON_PARALLAX)
    assert np.all(m1[2:, 1] == 0)
    # measured-2: up (negative y, y is down), no sideways motion.
    m2 = motions["measured-2"].array()
    assert m2[0, 1] == pytest.approx(-0.025) and abs(m2[0, 0]) < 1e-12
    assert "measured-3" not in motions and [d["hour"] for d in summary["directions"]] == ["3h", "12h"]
    with pytest.raises(ValueError, match="no video could be measured"):
        motions_from_measurements([VideoMotion(uri="bad", error="x")])


# ---------------------------------------------------------------------------
# a collection with Ray Data


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Four measurable videos + masks, a corrupt .mp4 and a video whose mask is empty."""
    folder = tmp_path_factory.mktemp("timelapses")
    truth = {}
    for i, (seed, drift, water) in enumerate(VIDEOS):
        video, mask = _render(seed, drift, water)
        truth[str(_write(folder, f"clip{i}", video, mask))] = drift
    (folder / "corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    video, mask = _render(1, (1.0, 0.0), False)
    empty = _write(folder, "nomask", video, np.zeros_like(mask))
    return {"folder": folder, "truth": truth, "corrupt": str(folder / "corrupt.mp4"), "empty": str(empty)}


def test_calibrate_measures_every_video_in_order(local_ray, collection: dict[str, Any]) -> None:
    uris = list(collection["truth"]) + [collection["corrupt"]]
    rows = calibrate(uris)
    assert [r.uri for r in rows] == uris
    for row, (uri, (dx, dy)) in zip(rows, collection["truth"].items()):
        assert row.ok and row.mask_uri == str(mask_path_for(uri)), row
        assert _close(row.dx_px, dx) and _close(row.dy_px, dy), row
        assert row.dx == pytest.approx(2 * row.dx_px / SIZE) and row.dy == pytest.approx(2 * row.dy_px / SIZE)
        assert (row.width, row.height, row.frames, row.pairs) == (SIZE, SIZE, FRAMES, FRAMES - 1)
    assert rows[-1].error and not rows[-1].ok and rows[-1].speed is None
    assert calibrate([]) == []


def test_run_calibration_writes_loadable_motions_and_a_report(local_ray, collection: dict[str, Any],
                                                              tmp_path: Path) -> None:
    folder, truth = collection["folder"], collection["truth"]
    assert len(list_videos(str(folder))) == len(truth) + 2  # the .mask.png files are not videos
    out = tmp_path / "calibrated" / "motions.json"
    summary = run_calibration(str(folder), str(out))

    assert summary["videos"] == len(truth) + 2 and summary["measured"] == len(truth) and summary["failed"] == 2
    true_speeds = [2 * math.hypot(*d) / SIZE for d in truth.values()]  # normalised units per frame
    assert summary["median_speed"] == pytest.approx(float(np.median(true_speeds)), rel=0.15)

    motions = load_motions(out)
    assert set(motions) == {f"{h}h" for h in range(1, 13)} | {"measured-1", "measured-2", "measured-3"}
    top = motions["3h"].array()[:2]  # [2, 2] left-top, right-top
    np.testing.assert_allclose(top, [[summary["median_speed"], 0.0]] * 2, rtol=1e-9, atol=1e-15)
    # Most videos drift right: measured-1 moves right, at their speed (1.5 and 2 px at 64 px).
    m1 = motions["measured-1"].array()
    assert summary["directions"][0]["hour"] == "3h" and summary["directions"][0]["videos"] == 2
    assert m1[0, 0] == pytest.approx(2 * 1.75 / SIZE, rel=0.15) and abs(m1[0, 1]) < 0.1 * m1[0, 0]
    # The rising clouds (dy < 0, y is down) are a "12h" direction, the left-going ones "9h".
    by_hour = {d["hour"]: d for d in summary["directions"]}
    assert {h: d["videos"] for h, d in by_hour.items()} == {"3h": 2, "9h": 1, "12h": 1}
    up, left = motions[by_hour["12h"]["name"]].array(), motions[by_hour["9h"]["name"]].array()
    assert up[0, 1] < 0 and abs(up[0, 0]) < 0.2 * abs(up[0, 1]) and left[0, 0] < 0

    report = json.loads(Path(report_path_for(str(out))).read_text())
    assert report["summary"]["median_speed"] == summary["median_speed"]
    rows = {Path(r["uri"]).name: r for r in report["videos"]}
    assert set(rows) == {Path(u).name for u in truth} | {"corrupt.mp4", "nomask.mp4"}
    assert rows["corrupt.mp4"]["error"] and rows["corrupt.mp4"]["speed"] is None
    assert "empty mask" in rows["nomask.mp4"]["error"]
    for uri, (dx, dy) in truth.items():
        r = rows[Path(uri).name]
        assert r["error"] is None and _close(r["dx_px"], dx) and _close(r["dy_px"], dy), r


def test_run_calibration_reports_when_nothing_could_be_measured(local_ray, tmp_path: Path) -> None:
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / "broken.mp4").write_bytes(b"not a video")
    out = tmp_path / "motions.json"
    with pytest.raises(ValueError, match="no video could be measured"):
        run_calibration(str(tmp_path / "videos"), str(out))
    assert not out.exists()
    report = json.loads(Path(report_path_for(str(out))).read_text())
    assert report["videos"][0]["error"] and "no video could be measured" in report["error"]


def test_measure_video_error_rows_do_not_raise(tmp_path: Path) -> None:
    missing = measure_video(str(tmp_path / "missing.mp4"))
    assert missing.error and "FileNotFoundError" in missing.error
    video, mask = _render(1, (1.0, 0.0), False, frames=1)
    path = _write(tmp_path, "single", video, mask)
    assert "too few frames" in (measure_video(str(path)).error or "")
