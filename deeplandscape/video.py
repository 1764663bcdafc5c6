"""Small PyAV-based video I/O used across the project.

Every video the project reads or writes (synthetic time-lapses, animated
outputs, evaluation clips) goes through this module so that colour format,
frame layout and error messages are the same everywhere: frames are always
``uint8`` RGB arrays shaped ``[H, W, 3]`` (one frame) or ``[T, H, W, 3]``
(a clip).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from types import TracebackType
from typing import Iterable, Iterator

import av
import numpy as np

__all__ = [
    "VideoError",
    "VideoInfo",
    "VideoWriter",
    "iter_frames",
    "iter_frames_from_bytes",
    "probe_video",
    "read_video",
    "write_video",
]

PathLike = str | os.PathLike[str]

# Pixel formats whose chroma planes are subsampled by 2 along each axis; the
# encoder rejects (or silently crops) odd sizes for them.
_HALF_WIDTH_FORMATS = ("420", "422", "411", "nv12", "nv21")
_HALF_HEIGHT_FORMATS = ("420", "nv12", "nv21")


class VideoError(RuntimeError):
    """Raised when a video file cannot be opened, decoded or encoded."""


@dataclass(frozen=True)
class VideoInfo:
    """Basic facts about a video's first video stream."""

    num_frames: int
    width: int
    height: int
    fps: float
    duration_s: float


def _fps_fraction(fps: float) -> Fraction:
    """Turn a float rate into the exact rational rate the muxer needs.

    ``limit_denominator(1001)`` recovers the NTSC rates (30000/1001 ...) from
    their float approximations while keeping integer rates integral.
    """
    if not np.isfinite(fps) or fps <= 0:
        raise ValueError(f"fps must be a positive finite number, got {fps!r}")
    return Fraction(fps).limit_denominator(1001)


class VideoWriter:
    """Context manager that streams RGB frames into an encoded video file.

    Frames are encoded as they arrive, so memory use is bounded by what the
    caller passes to :meth:`write`.

    Example::

        with VideoWriter("out.mp4", fps=15, width=64, height=64) as w:
            w.write(frame)          # [H, W, 3] uint8
            w.write(clip)           # [T, H, W, 3] uint8
    """

    def __init__(
        self,
        path: PathLike,
        fps: float,
        width: int,
        height: int,
        crf: int = 18,
        codec: str = "libx264",
        pix_fmt: str = "yuv420p",
        threads: int = 0,
    ) -> None:
        self.path = Path(path)
        self.threads = int(threads)  # 0: the encoder's choice; 1: the same bytes on every run
        self.width = int(width)
        self.height = int(height)
        self.fps = float(fps)
        self.crf = int(crf)
        self.codec = codec
        self.pix_fmt = pix_fmt
        self.frames_written = 0
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"{self.path}: width and height must be positive, got {width}x{height}")
        if any(tag in pix_fmt for tag in _HALF_WIDTH_FORMATS) and self.width % 2:
            raise ValueError(
                f"{self.path}: pix_fmt {pix_fmt!r} needs an even width, got {width}x{height} (W x H); "
                "crop or pad the frames to even sizes"
            )
        if any(tag in pix_fmt for tag in _HALF_HEIGHT_FORMATS) and self.height % 2:
            raise ValueError(
                f"{self.path}: pix_fmt {pix_fmt!r} needs an even height, got {width}x{height} (W x H); "
                "crop or pad the frames to even sizes"
            )
        self._rate = _fps_fraction(self.fps)
        self._container: av.container.OutputContainer | None = None
        self._stream: av.video.stream.VideoStream | None = None

    # -- context manager -------------------------------------------------
    def __enter__(self) -> "VideoWriter":
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- lifecycle -------------------------------------------------------
    def open(self) -> None:
        """Create the file and the encoder (called by ``__enter__``)."""
        if self._container is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            container = av.open(str(self.path), mode="w")
        except (av.error.FFmpegError, OSError) as exc:
            raise VideoError(f"cannot open {self.path} for writing: {exc}") from exc
        try:
            stream = container.add_stream(self.codec, rate=self._rate)
            stream.width = self.width
            stream.height = self.height
            stream.pix_fmt = self.pix_fmt
            # One tick per frame: frame.pts is simply the frame index.
            stream.codec_context.time_base = 1 / self._rate
            if self.codec in ("libx264", "libx265", "h264", "hevc"):
                stream.options = {"crf": str(self.crf)}
            if self.threads:
                stream.codec_context.thread_count = self.threads
        except Exception as exc:
            container.close()
            raise VideoError(f"cannot set up {self.codec!r}/{self.pix_fmt!r} encoder for {self.path}: {exc}") from exc
        self._container, self._stream = container, stream

    def close(self) -> None:
        """Flush the encoder and finalise the file; safe to call twice.

        PyAV creates the file when the first packet is muxed, so a writer that
        never received a frame leaves no file behind.
        """
        container, stream = self._container, self._stream
        if container is None or stream is None:
            return
        self._container = self._stream = None
        try:
            for packet in stream.encode(None):
                container.mux(packet)
        finally:
            container.close()

    # -- writing ---------------------------------------------------------
    def write(self, frames: np.ndarray) -> None:
        """Encode one frame ``[H, W, 3]`` or a batch ``[T, H, W, 3]`` (uint8 RGB)."""
        if self._container is None or self._stream is None:
            self.open()
        assert self._container is not None and self._stream is not None
        arr = np.asarray(frames)
        self._check(arr)
        batch = arr[None] if arr.ndim == 3 else arr  # [T, H, W, 3]
        for frame in batch:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts = self.frames_written
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
            self.frames_written += 1

    def _check(self, arr: np.ndarray) -> None:
        """Reject anything that is not uint8 RGB at the writer's size, naming the file."""
        expected = f"[{self.height}, {self.width}, 3] or [T, {self.height}, {self.width}, 3] uint8"
        if arr.dtype != np.uint8:
            raise ValueError(
                f"{self.path}: frames must be uint8 RGB {expected}, got dtype {arr.dtype} with shape {arr.shape}"
            )
        if arr.ndim not in (3, 4) or arr.shape[-3:] != (self.height, self.width, 3):
            raise ValueError(f"{self.path}: frames must be {expected}, got shape {arr.shape}")


def write_video(
    path: PathLike,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float,
    crf: int = 18,
    threads: int = 0,
) -> None:
    """Write a clip with H.264/yuv420p; the size is taken from the first frame.

    ``frames`` is an array ``[T, H, W, 3]`` or any iterable of ``[H, W, 3]``
    uint8 arrays; an iterable is consumed lazily, one frame at a time.
    ``threads=1`` gives the same bytes on every run (x264's frame threads
    can decide differently on a loaded machine).
    """
    iterator: Iterator[np.ndarray] = iter(frames)
    first = next(iterator, None)
    if first is None:
        raise ValueError(f"{path}: no frames to write")
    first = np.asarray(first)
    if first.ndim != 3:
        raise ValueError(f"{path}: each frame must be [H, W, 3] uint8, got shape {first.shape}")
    height, width = int(first.shape[0]), int(first.shape[1])
    with VideoWriter(path, fps=fps, width=width, height=height, crf=crf, threads=threads) as writer:
        writer.write(first)
        for frame in iterator:
            writer.write(frame)


def _open_input(path: PathLike) -> "av.container.InputContainer":
    """Open a file for decoding, with errors that name the file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"video file not found: {p}")
    try:
        container = av.open(str(p), mode="r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoError(f"cannot read video {p}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise VideoError(f"cannot read video {p}: no video stream")
    return container


def _stream_fps(stream: "av.video.stream.VideoStream") -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def iter_frames(path: PathLike) -> Iterator[np.ndarray]:
    """Yield the frames of a video one by one as ``[H, W, 3]`` uint8 RGB arrays.

    The file is opened at call time (not at the first ``next``), so a missing
    or unreadable file fails where the caller asked for it.
    """
    return _decode(_open_input(path), path)


def iter_frames_from_bytes(data: bytes, name: str = "<bytes>") -> Iterator[np.ndarray]:
    """Like :func:`iter_frames`, for a video held in memory (read from object storage).

    `name` only labels errors. Fails here, not at the first ``next``, when the bytes are not
    a video with a video stream.
    """
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise VideoError(f"cannot read video {name}: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise VideoError(f"cannot read video {name}: no video stream")
    return _decode(container, name)


def _decode(container: "av.container.InputContainer", path: PathLike) -> Iterator[np.ndarray]:
    try:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")
        except av.error.FFmpegError as exc:
            raise VideoError(f"cannot decode video {path}: {exc}") from exc
    finally:
        container.close()


def read_video(path: PathLike) -> tuple[np.ndarray, float]:
    """Decode a whole video into memory: (frames ``[T, H, W, 3]`` uint8 RGB, fps)."""
    info = probe_video(path)
    frames = list(iter_frames(path))
    if not frames:
        raise VideoError(f"cannot read video {path}: it has no decodable frames")
    return np.stack(frames), info.fps  # [T, H, W, 3]


def probe_video(path: PathLike) -> VideoInfo:
    """Read a video's size, rate and length from its headers.

    Falls back to counting decoded frames when the container does not store
    a frame count (some formats/encoders leave it at 0).
    """
    container = _open_input(path)
    try:
        stream = container.streams.video[0]
        width, height = int(stream.codec_context.width), int(stream.codec_context.height)
        fps = _stream_fps(stream)
        num_frames = int(stream.frames or 0)
        if num_frames <= 0:
            try:
                num_frames = sum(1 for _ in container.decode(stream))
            except av.error.FFmpegError as exc:
                raise VideoError(f"cannot decode video {path}: {exc}") from exc
        if stream.duration is not None and stream.time_base is not None:
            duration_s = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration_s = container.duration / av.time_base
        else:
            duration_s = num_frames / fps if fps > 0 else 0.0
    finally:
        container.close()
    return VideoInfo(num_frames=num_frames, width=width, height=height, fps=fps, duration_s=duration_s)
