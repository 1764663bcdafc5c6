"""FVD: clips from real mp4s, the I3D call, Ray Data statistics equal to one process, the cache.

The I3D network is a TorchScript stand-in written by the tests (conftest.py): the real call
signature and output shape, random weights. Videos are real H.264 mp4s from the synthetic
data set.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from deeplandscape.data.synth import write_dataset
from deeplandscape.evaluate import weights
from deeplandscape.evaluate.fvd import (
    I3D_SIZE,
    I3DFeatures,
    TooShortError,
    clip_starts,
    preprocess_clips,
    read_clips,
)
from deeplandscape.evaluate.inputs import fingerprint, list_entries
from deeplandscape.evaluate.pipeline import FeatureSpec, block_stats, fvd, merge_block_rows
from deeplandscape.evaluate.stats import FeatureStats, frechet_distance
from deeplandscape.evaluate.weights import MissingWeightsError
from deeplandscape.video import read_video, write_video


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """Two sets of synthetic time-lapses (18 frames, 32 px) and one 8-frame video in B."""
    root = tmp_path_factory.mktemp("fvd-videos")
    write_dataset(root / "a", images=0, videos=4, frames=18, size=32, seed=1)
    write_dataset(root / "b", images=0, videos=3, frames=18, size=32, seed=2)
    frames, _ = read_video(root / "b" / "videos" / "00000.mp4")
    write_video(root / "b" / "videos" / "short.mp4", frames[:8], fps=15)  # too short for a 16-frame clip
    return root / "a" / "videos", root / "b" / "videos"


def in_process_stats(folder, clips_per_video=1) -> FeatureStats:
    """The reference: every clip of every long-enough video through the network in this process."""
    net = I3DFeatures("cpu", weights.weight_path("i3d"))
    stats = FeatureStats.empty(400)
    for e in list_entries(str(folder), "videos"):
        try:
            stats.update(net.features(read_clips(e.uri, clips_per_video=clips_per_video)))
        except TooShortError:
            pass
    return stats


def test_clip_starts_cover_the_video_evenly():
    assert clip_starts(16) == [0]
    assert clip_starts(40, clips_per_video=3) == [0, 12, 24]  # last clip ends on the last frame
    assert clip_starts(31, clip_len=16, clip_step=2) == [0]  # spans 31 frames
    with pytest.raises(TooShortError):
        clip_starts(30, clip_len=16, clip_step=2)


def test_preprocessing_gives_i3d_its_input_layout_and_range():
    clips = np.zeros((2, 16, 40, 56, 3), np.uint8)
    clips[1] = 255
    clips[0, :, :, :, 0] = 255  # red
    x = preprocess_clips(clips)
    assert x.shape == (2, 3, 16, I3D_SIZE, I3D_SIZE) and x.dtype == torch.float32
    torch.testing.assert_close(x[0, 0], torch.ones(16, I3D_SIZE, I3D_SIZE))
    torch.testing.assert_close(x[0, 1:], -torch.ones(2, 16, I3D_SIZE, I3D_SIZE))
    torch.testing.assert_close(x[1], torch.ones(3, 16, I3D_SIZE, I3D_SIZE))


def test_read_clips_takes_the_right_frames_of_a_real_mp4(videos):
    path = videos[0] / "00001.mp4"
    frames, _ = read_video(path)  # [18, 32, 32, 3]
    clips = read_clips(str(path), clip_len=16, clips_per_video=2)
    assert clips.shape == (2, 16, 32, 32, 3)
    np.testing.assert_array_equal(clips[0], frames[:16])
    np.testing.assert_array_equal(clips[1], frames[2:18])
    np.testing.assert_array_equal(read_clips(str(path), clip_len=8, clip_step=2)[0], frames[0:16:2])
    with pytest.raises(TooShortError):
        read_clips(str(videos[1] / "short.mp4"))


def test_missing_i3d_is_a_clear_error(tmp_path, monkeypatch, videos):
    monkeypatch.setenv("DEEPLANDSCAPE_WEIGHTS", str(tmp_path / "empty"))
    with pytest.raises(MissingWeightsError, match="i3d_torchscript.pt.*deeplandscape weights fetch i3d"):
        fvd(str(videos[0]), str(videos[1]))


def test_block_stats_merged_equal_one_shot():
    """block_stats over uneven blocks, merged on the 'driver', equals one FeatureStats.of."""
    rng = np.random.default_rng(0)
    x = (2.0 + rng.normal(size=(23, 5))).astype(np.float32)
    groups = np.array(["a", "b"] * 11 + ["a"])
    status = np.array(["ok"] * 20 + ["skipped", "error", "ok"])
    rows = []
    for part in np.split(np.arange(23), [4, 5, 17]):
        batch = {"group": groups[part], "features": x[part], "status": status[part],
                 "uri": np.array([f"f{i}" for i in part]), "message": np.array(["bad"] * len(part))}
        out = block_stats(batch)
        rows += [{k: v[i] for k, v in out.items()} for i in range(len(out["group"]))]
    merged = merge_block_rows(rows, 5)
    for g in ("a", "b"):
        ok = (groups == g) & (status == "ok")
        one_shot = FeatureStats.of(x[ok])
        assert merged[g].stats.n == one_shot.n
        np.testing.assert_allclose(merged[g].stats.sum_outer, one_shot.sum_outer, rtol=1e-12)
        np.testing.assert_allclose(merged[g].stats.cov(), one_shot.cov(), rtol=1e-10)
    assert merged["a"].skipped == 1 and merged["b"].skipped == 0  # row 20 is in "a", row 21 in "b"
    assert merged["a"].errors == [] and merged["b"].errors == ["f21: bad"]
    assert merged["a"].computed + merged["b"].computed == 23


def test_fvd_on_ray_equals_in_process_and_second_call_is_cached(local_ray, eval_env, videos):
    a, b = map(str, videos)
    # stats_rows=3: the features leave the actors in blocks of 3 rows, each reduced to its own
    # (sum x, sum x x^T, n); the driver merges them.
    first = fvd(a, b, clips_per_video=2, workers=1, batch_size=2, stats_rows=3)
    ra, rb = in_process_stats(a, clips_per_video=2), in_process_stats(b, clips_per_video=2)
    for ours, ref in zip(first.stats, (ra, rb)):
        assert ours.n == ref.n
        # Equal up to float32 rounding in the network (another batch size and thread count).
        np.testing.assert_allclose(ours.sum, ref.sum, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ours.cov(), ref.cov(), rtol=1e-4, atol=1e-5)
    expected = frechet_distance(ra.mean(), ra.cov(), rb.mean(), rb.cov())
    print(f"FVD (stand-in I3D) on Ray {first.value:.6f}, in one process {expected:.6f}")
    assert first.value > 1.0
    assert first.value == pytest.approx(expected, rel=1e-5)
    assert first.a["blocks"] > 1 and first.b["blocks"] > 1
    assert (first.a["cache"], first.b["cache"]) == ("miss", "miss")
    assert (first.a["features"], first.b["features"]) == (8, 6)
    assert (first.a["computed"], first.b["computed"]) == (8, 7)  # B: 6 clips + 1 video skipped as too short
    assert first.b["skipped"] == 1
    assert first.settings["clip_len"] == 16 and first.settings["network"] == "i3d"

    second = fvd(a, b, clips_per_video=2, workers=1)
    assert (second.a["cache"], second.b["cache"]) == ("hit", "hit")
    assert second.a["computed"] == second.b["computed"] == 0
    assert second.value == first.value
    # A set against itself, from the cache: 0 up to rounding (8 clips in 400-d: a singular covariance).
    assert abs(fvd(a, a, clips_per_video=2).value) < 1e-9 * np.trace(ra.cov())

    # Other settings, or a changed file, are another key: computed again.
    entries = list_entries(b, "videos")
    keys = {fingerprint(entries, FeatureSpec("i3d", clip_len=n, clips_per_video=2).settings()) for n in (8, 16)}
    assert len(keys) == 2
    video = videos[1] / "00002.mp4"
    st = video.stat()
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = fvd(a, b, clips_per_video=2, workers=1, batch_size=2)
    assert (third.a["cache"], third.b["cache"]) == ("hit", "miss")
    assert third.b["computed"] == 7
    assert third.value == pytest.approx(first.value, rel=1e-6)  # same content (float32 rounding aside)
