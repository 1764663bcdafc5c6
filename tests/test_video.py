"""Round-trip and error tests for deeplandscape.video (PyAV I/O)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deeplandscape.video import VideoError, VideoInfo, VideoWriter, iter_frames, probe_video, read_video, write_video


def _smooth_clip(t: int = 12, h: int = 48, w: int = 64) -> np.ndarray:
    """Smooth moving colour pattern: H.264 at crf 18 should reproduce it closely."""
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    frames = np.empty((t, h, w, 3), dtype=np.uint8)  # [T, H, W, 3]
    for i in range(t):
        phase = 2 * np.pi * i / t
        frames[i, ..., 0] = 128 + 90 * np.sin(2 * np.pi * xx + phase)
        frames[i, ..., 1] = 40 + 170 * yy
        frames[i, ..., 2] = 128 + 60 * np.cos(2 * np.pi * (xx + yy) - phase)
    return frames


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(mse, 1e-12)))


def test_write_read_roundtrip(tmp_path: Path) -> None:
    clip = _smooth_clip()
    path = tmp_path / "clip.mp4"
    write_video(path, clip, fps=15)
    frames, fps = read_video(path)
    assert frames.shape == clip.shape
    assert frames.dtype == np.uint8
    assert fps == pytest.approx(15.0)
    psnr = _psnr(frames, clip)
    assert psnr > 30, f"PSNR {psnr:.1f} dB <= 30 dB"
    info = probe_video(str(path))
    assert info == VideoInfo(num_frames=12, width=64, height=48, fps=pytest.approx(15.0),
                             duration_s=pytest.approx(12 / 15, abs=0.1))


def test_iterable_input_and_iter_frames(tmp_path: Path) -> None:
    clip = _smooth_clip(t=7)
    path = tmp_path / "gen.mp4"
    write_video(path, (frame for frame in clip), fps=29.97)  # a generator, consumed lazily
    decoded = list(iter_frames(path))
    assert len(decoded) == 7
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in decoded)
    assert probe_video(path).fps == pytest.approx(29.97, abs=1e-3)


def test_writer_single_frames_and_batches(tmp_path: Path) -> None:
    clip = _smooth_clip(t=6)
    path = tmp_path / "writer.mp4"
    with VideoWriter(path, fps=10, width=64, height=48) as writer:
        writer.write(clip[0])  # [H, W, 3]
        writer.write(clip[1:])  # [T, H, W, 3]
        assert writer.frames_written == 6
    frames, fps = read_video(path)
    assert frames.shape == (6, 48, 64, 3)
    assert fps == pytest.approx(10.0)


def test_odd_size_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="even"):
        VideoWriter(tmp_path / "odd.mp4", fps=15, width=63, height=48)
    with pytest.raises(ValueError, match="even"):
        write_video(tmp_path / "odd2.mp4", np.zeros((2, 31, 32, 3), np.uint8), fps=15)


def test_bad_frames_name_path_and_shape(tmp_path: Path) -> None:
    path = tmp_path / "bad.mp4"
    with VideoWriter(path, fps=15, width=32, height=32) as writer:
        with pytest.raises(ValueError, match=r"bad\.mp4.*\(16, 32, 3\)"):
            writer.write(np.zeros((16, 32, 3), np.uint8))
        with pytest.raises(ValueError, match=r"bad\.mp4.*float32"):
            writer.write(np.zeros((32, 32, 3), np.float32))
        writer.write(np.zeros((32, 32, 3), np.uint8))


def test_unreadable_file_errors_name_the_file(tmp_path: Path) -> None:
    junk = tmp_path / "not_a_video.mp4"
    junk.write_bytes(b"definitely not an mp4 " * 64)
    with pytest.raises(VideoError, match="not_a_video.mp4"):
        read_video(junk)
    with pytest.raises(VideoError, match="not_a_video.mp4"):
        probe_video(junk)
    with pytest.raises(VideoError, match="not_a_video.mp4"):
        iter_frames(junk)
    with pytest.raises(FileNotFoundError, match="missing.mp4"):
        read_video(tmp_path / "missing.mp4")
