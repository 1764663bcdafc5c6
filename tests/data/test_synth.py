"""Tests for the procedural landscape data set (deeplandscape.data.synth)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from PIL import Image

from deeplandscape.data.synth import (
    SceneParams,
    is_mask_file,
    mask_path_for,
    render_frame,
    render_video,
    sample_scene,
    write_dataset,
)

SIZE, FRAMES, IMAGES, VIDEOS, SEED = 48, 16, 6, 4, 123
LUMA = np.array([0.299, 0.587, 0.114])


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("synth")
    summary = write_dataset(out, images=IMAGES, videos=VIDEOS, frames=FRAMES, size=SIZE, seed=SEED)
    manifest = json.loads((out / "synth.json").read_text())
    return {"out": out, "summary": summary, "manifest": manifest}


def _decode(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])  # [T, H, W, 3]


def _load_mask(path: Path) -> np.ndarray:
    img = Image.open(path)
    assert img.mode == "L"
    return np.asarray(img) > 127


def _scene_with(water: bool) -> SceneParams:
    rng = np.random.default_rng(0)
    while True:
        params = sample_scene(rng)
        if params.has_water == water:
            return params


def _static_dynamic_ratio(frames: np.ndarray, mask: np.ndarray) -> float:
    """Mean temporal std of luminance normalised by each frame's median static luminance,
    on static pixels divided by the same on dynamic pixels. Normalising removes the global
    light change, so static pixels only keep compression noise while clouds keep moving."""
    luma = frames.astype(np.float64) @ LUMA  # [T, H, W]
    norm = luma / np.median(luma[:, ~mask], axis=1)[:, None, None]
    std = norm.std(axis=0)  # [H, W]
    return float(std[~mask].mean() / std[mask].mean())


def test_summary_and_layout(dataset: dict[str, Any]) -> None:
    out, summary, manifest = dataset["out"], dataset["summary"], dataset["manifest"]
    assert summary["num_photos"] == IMAGES and summary["num_videos"] == VIDEOS
    assert len(summary["photos"]) == IMAGES and len(summary["videos"]) == VIDEOS
    assert manifest["args"] == {"images": IMAGES, "videos": VIDEOS, "frames": FRAMES, "size": SIZE,
                                "seed": SEED, "fps": 15.0}
    for entry in manifest["photos"] + manifest["videos"]:
        assert "drift" in entry["params"] and len(entry["params"]["drift"]) == 2
        assert (out / entry["mask"]).is_file()
        SceneParams.from_dict(entry["params"])  # the manifest round-trips into params
    photos = sorted(p for p in (out / "photos").iterdir() if not is_mask_file(p))
    assert [p.name for p in photos] == [f"{i:05d}.png" for i in range(IMAGES)]


def test_photos_open_at_size_with_aligned_masks(dataset: dict[str, Any]) -> None:
    for path in map(Path, dataset["summary"]["photos"]):
        with Image.open(path) as img:
            assert img.size == (SIZE, SIZE) and img.mode == "RGB"
        mask = _load_mask(mask_path_for(path))
        assert mask.shape == (SIZE, SIZE)
        assert mask.any() and not mask.all(), path
        assert mask[0].all(), f"{path}: top row should be sky (dynamic)"
        assert not mask[-SIZE // 8 :].all(), f"{path}: bottom region should contain static ground"


def test_videos_decode_and_static_pixels_stay_still(dataset: dict[str, Any]) -> None:
    for path in map(Path, dataset["summary"]["videos"]):
        frames = _decode(path)
        assert frames.shape == (FRAMES, SIZE, SIZE, 3), path
        mask = _load_mask(mask_path_for(path))
        assert mask[0].all() and mask.any() and not mask.all(), path
        ratio = _static_dynamic_ratio(frames, mask)
        assert ratio < 0.3, f"{path}: static/dynamic temporal-std ratio {ratio:.3f} (want < 0.3)"


def test_rendered_static_geometry_is_exactly_still() -> None:
    params = _scene_with(water=True)
    video, mask = render_video(params, frames=12, size=64)
    ratio = _static_dynamic_ratio(video, mask)
    assert ratio < 0.1, f"static/dynamic temporal-std ratio {ratio:.3f} (want < 0.1)"
    # Without the light change, static pixels are bit-identical over time.
    still = dataclasses.replace(params, light_amp=0.0, light_tint=(0.0, 0.0, 0.0))
    video, mask = render_video(still, frames=12, size=64)
    assert (video[:, ~mask] == video[0, ~mask]).all()
    assert (video[:, mask] != video[0, mask]).any()


def test_drift_is_the_ground_truth_motion() -> None:
    """With integer horizontal drift and no light change, screen-fixed sun/stars or mountains
    (whose reflections are static pixels inside the water mask), the sky and its reflection
    in frame t+1 are frame t rolled by dx pixels, on every row (the cloud noise is periodic)."""
    base = _scene_with(water=True)
    params = dataclasses.replace(base, drift=(3.0, 0.0), light_amp=0.0, light_tint=(0.0, 0.0, 0.0),
                                 sun_strength=0.0, stars=0.0, water_ripple=0.0, layers=())
    video, mask = render_video(params, frames=2, size=64)
    shifted = np.roll(video[0], 3, axis=1)
    valid = mask & np.roll(mask, 3, axis=1)
    assert np.abs(video[1][valid].astype(int) - shifted[valid].astype(int)).max() <= 1


def test_render_frame_matches_video_and_mask_is_time_independent() -> None:
    params = sample_scene(np.random.default_rng(5))
    video, mask = render_video(params, frames=4, size=32)
    for t in range(4):
        frame, mask_t = render_frame(params, float(t), 32)
        np.testing.assert_array_equal(frame, video[t])
        np.testing.assert_array_equal(mask_t, mask)
    assert video.shape == (4, 32, 32, 3) and video.dtype == np.uint8 and mask.dtype == bool


def test_water_is_dynamic_below_horizon() -> None:
    for water in (True, False):
        params = _scene_with(water)
        _, mask = render_frame(params, 0.0, 64)
        below = mask[int(np.ceil(params.horizon * 64)) + 1 :]
        assert below.any() == water, f"has_water={water} but dynamic pixels below horizon: {below.sum()}"


def test_dataset_water_scenes_have_dynamic_pixels_below_horizon(dataset: dict[str, Any]) -> None:
    out, manifest = dataset["out"], dataset["manifest"]
    for entry in manifest["photos"] + manifest["videos"]:
        mask = _load_mask(out / entry["mask"])
        below = mask[int(np.ceil(entry["params"]["horizon"] * SIZE)) + 1 :]
        assert below.any() == entry["params"]["has_water"], entry["file"]


def test_deterministic_for_seed(dataset: dict[str, Any], tmp_path: Path) -> None:
    again = write_dataset(tmp_path / "again", images=IMAGES, videos=VIDEOS, frames=FRAMES, size=SIZE, seed=SEED)
    assert json.loads(Path(again["manifest"]).read_text()) == dataset["manifest"]
    for a, b in zip(dataset["summary"]["photos"], again["photos"]):
        np.testing.assert_array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
    for a, b in zip(dataset["summary"]["videos"], again["videos"]):
        assert Path(a).read_bytes() == Path(b).read_bytes(), f"{a} and {b} differ"
    other = write_dataset(tmp_path / "other", images=1, videos=0, frames=0, size=SIZE, seed=SEED + 1)
    assert not np.array_equal(np.asarray(Image.open(other["photos"][0])),
                              np.asarray(Image.open(dataset["summary"]["photos"][0])))


def test_odd_size_and_mask_helpers(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        write_dataset(tmp_path, images=1, videos=0, frames=0, size=33, seed=0)
    with pytest.raises(ValueError, match="even"):
        render_frame(sample_scene(np.random.default_rng(0)), 0.0, 31)
    assert mask_path_for("a/b/00001.png") == Path("a/b/00001.mask.png")
    assert mask_path_for(Path("v/00002.mp4")) == Path("v/00002.mask.png")
    assert is_mask_file("a/00001.mask.png") and not is_mask_file("a/00001.png")
    with pytest.raises(ValueError):
        mask_path_for("a/00001.mask.png")
