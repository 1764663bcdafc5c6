"""Real training data for one worker: photos for D_st, video frames for D_pair and crops.

Photos and frames are decoded once (centre square crop, resized to `load_resolution`)
and held as uint8 tensors; every batch is drawn with a `torch.Generator` the trainer seeds
from (seed, step), so sampling is reproducible and a resumed run draws exactly the batches
the uninterrupted run would have drawn. Each call draws the random numbers of the whole
global batch and materialises only this worker's `part`, so N workers together see exactly
the batch one worker would see.

Every real image D sees is a random square window of `Windows.fraction` of the frame side,
resized to the phase's resolution: photos for D_st, real pairs (one window for both frames)
and crop pairs (two windows of one frame, paper 3.1) alike, so all come at one scale and
D_pair cannot reject crop pairs by their zoom. Both frames of a pair share one flip. The
loader keeps frames at a higher resolution than the model (2x by default), so windows still
have real detail.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from deeplandscape import storage
from deeplandscape.config import TrainConfig
from deeplandscape.data.synth import is_mask_file
from deeplandscape.data.transforms import square_resize  # torch-free: Ray Data tasks use it too
from deeplandscape.video import read_video

PHOTO_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi")


def load_photo(uri: str, size: int) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(storage.read_bytes(uri))) as im:
            return square_resize(np.asarray(im.convert("RGB")), size)
    except UnidentifiedImageError:
        raise ValueError(f"cannot read photo {uri}: not a known image format") from None
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read photo {uri}: {e}") from e


def _readable(uris: list[str], read: Callable[[str], np.ndarray], skipped: list[str]) -> list[np.ndarray]:
    """`read` of each URI; one that fails is left out and noted in `skipped` with the reason."""
    out = []
    for uri in uris:
        try:
            out.append(read(uri))
        except Exception as e:  # noqa: BLE001 - any decoder error: skip the file, say why
            skipped.append(f"{uri}: {e}")
    return out


def load_video_frames(uri: str, size: int, min_frames: int = 1) -> np.ndarray:
    """All frames of a video, square-resized: [T, size, size, 3] uint8."""
    if storage.is_remote(uri):
        suffix = os.path.splitext(uri)[1]
        with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
            tmp.write(storage.read_bytes(uri))
            tmp.flush()
            frames, _ = read_video(tmp.name)
    else:
        frames, _ = read_video(storage.resolve(uri)[1])
    if len(frames) < min_frames:
        raise ValueError(f"{len(frames)} frame(s), fewer than {min_frames}")
    return np.stack([square_resize(f, size) for f in frames])


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 [..., 3, H, W] -> float in [-1, 1]."""
    return x.float().div(127.5).sub(1.0)


def resize_to(x: torch.Tensor, resolution: int) -> torch.Tensor:
    """Area-resize float images [N, 3, H, W] (H a multiple of resolution: exact box filter)."""
    if x.shape[-1] == resolution:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="area")


@dataclass(frozen=True)
class Windows:
    """Where in a frame D's real inputs come from (`train.window`, `train.crop_scale`)."""

    fraction: float = 0.75  # window side / frame side for photos and real pairs (1: the whole frame)
    crop_fraction: float = 0.75  # the same for each crop of a crop pair
    flip_crops: bool = True  # crop pairs flipped (both crops alike) as real pairs are

    @classmethod
    def of(cls, t: TrainConfig) -> "Windows":
        if t.window > 0:
            return cls(t.window, t.window, True)
        return cls(1.0, t.crop_scale, False)  # runs made before train.window

    def side(self, frame: int, resolution: int, fraction: float | None = None) -> int:
        """Window side in pixels of a `frame`-px frame: at least `resolution`, at most the frame."""
        return min(frame, max(resolution, int(round((self.fraction if fraction is None else fraction) * frame))))


def _window_positions(n: int, span: int, gen: torch.Generator, windows: int = 1) -> torch.Tensor:
    """Top-left corners [n, windows, 2] in [0, span]; drawn (for every row) even when span is 0."""
    return torch.randint(span + 1, (n, windows, 2), generator=gen)


def _cut(x: torch.Tensor, pos: torch.Tensor, side: int) -> torch.Tensor:
    """Windows of x [n, ..., L, L] at pos [n, 2] (top, left) -> [n, ..., side, side]."""
    return torch.stack([x[i, ..., t : t + side, left : left + side] for i, (t, left) in enumerate(pos.tolist())])


@dataclass
class CropPairs:
    images: torch.Tensor  # [B, 2, 3, r, r]
    frames: torch.Tensor  # [B, 2] (video index, frame index) of the one frame both crops come from
    boxes: torch.Tensor  # [B, 2, 3]: (top, left, side) of each crop in load-resolution pixels


class TrainingData:
    """In-memory photos [N, 3, L, L] and videos (list of [T, 3, L, L]) as uint8."""

    def __init__(self, photos: torch.Tensor, videos: list[torch.Tensor], windows: Windows = Windows()):
        if len(photos) == 0:
            raise ValueError("no training photos")
        if not videos or any(len(v) < 2 for v in videos):
            raise ValueError("need at least one time-lapse video with two or more frames")
        self.photos = photos
        self.videos = videos
        self.windows = windows
        self.load_resolution = photos.shape[-1]

    @classmethod
    def load(cls, images_uri: str, videos_uri: str, load_resolution: int,
             log: Callable[[str], None] | None = None, windows: Windows = Windows()) -> "TrainingData":
        """Decode every photo and video under the two folders. A file that cannot be read (or a
        video of fewer than two frames) is skipped, and `log` is told which and why; only a
        folder with nothing usable left is an error."""
        if not images_uri or not videos_uri:
            raise ValueError("training needs both data.images (photos) and data.videos (time-lapses)")
        photo_uris = [u for u in storage.list_files(images_uri, PHOTO_SUFFIXES) if not is_mask_file(u)]
        video_uris = storage.list_files(videos_uri, VIDEO_SUFFIXES)
        if not photo_uris:
            raise FileNotFoundError(f"no photos ({', '.join(PHOTO_SUFFIXES)}) under {images_uri}")
        if not video_uris:
            raise FileNotFoundError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) under {videos_uri}")
        skipped: list[str] = []
        photos = _readable(photo_uris, lambda u: load_photo(u, load_resolution), skipped)
        videos = _readable(video_uris, lambda u: load_video_frames(u, load_resolution, min_frames=2), skipped)
        for line in skipped:
            (log or print)(f"skipped {line}")
        if not photos:
            raise ValueError(f"no readable photo under {images_uri} ({len(photo_uris)} skipped)")
        if not videos:
            raise ValueError(f"no readable video of two or more frames under {videos_uri} "
                             f"({len(video_uris)} skipped)")
        as_chw = lambda a: torch.from_numpy(np.ascontiguousarray(a)).movedim(-1, -3)  # noqa: E731
        return cls(as_chw(np.stack(photos)), [as_chw(v) for v in videos], windows)

    # --- batches -------------------------------------------------------------------------
    def _in_window(self, x: torch.Tensor, resolution: int, gen: torch.Generator, part: slice, n: int) -> torch.Tensor:
        """x [rows, ..., L, L] float -> one random window per row, resized: [rows, ..., r, r]. The
        positions of all n rows are drawn, so every worker's slice matches one worker's batch."""
        L = self.load_resolution
        if self.windows.fraction >= 1.0:  # the whole frame (runs made before train.window)
            return resize_to(x.flatten(0, -4), resolution).reshape(*x.shape[:-2], resolution, resolution)
        side = self.windows.side(L, resolution)
        pos = _window_positions(n, L - side, gen)[part, 0]
        x = _cut(x, pos, side)
        return resize_to(x.flatten(0, -4), resolution).reshape(*x.shape[:-2], resolution, resolution)

    def sample_images(self, n: int, resolution: int, gen: torch.Generator, part: slice = slice(None)) -> torch.Tensor:
        """Random photos, each a random window, randomly flipped: [n, 3, r, r] in [-1, 1]
        (rows `part` of them)."""
        idx = torch.randint(len(self.photos), (n,), generator=gen)[part]
        flip = (torch.rand(n, generator=gen) < 0.5)[part]
        x = to_float(self.photos[idx])
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return self._in_window(x, resolution, gen, part, n)

    def sample_pairs(self, n: int, resolution: int, gen: torch.Generator, part: slice = slice(None)) -> torch.Tensor:
        """Real pairs: two distinct frames of one video, any order and distance, one window and
        one flip for both.

        Returns [n, 2, 3, r, r] in [-1, 1] (rows `part` of them).
        """
        vids = torch.randint(len(self.videos), (n,), generator=gen)[part].tolist()
        u = torch.rand(n, 2, generator=gen)[part]
        flip = (torch.rand(n, generator=gen) < 0.5)[part]
        pairs = []
        for i, v in enumerate(vids):
            t = len(self.videos[v])
            a = int(u[i, 0] * t)
            b = (a + 1 + int(u[i, 1] * (t - 1))) % t  # uniform over the other t-1 frames
            pairs.append(self.videos[v][[a, b]])
        x = to_float(torch.stack(pairs))  # [rows, 2, 3, L, L]
        x = torch.where(flip[:, None, None, None, None], x.flip(-1), x)
        return self._in_window(x, resolution, gen, part, n)

    def sample_crop_pairs(self, n: int, resolution: int, gen: torch.Generator,
                          part: slice = slice(None)) -> CropPairs:
        """Crop sampling (paper 3.1): two windows of ONE real frame at different places, at the
        scale of the real pairs, both flipped alike.

        They stand in for D_pair's fake pair, so D_pair cannot tell real from fake by image
        quality and has to look for pairwise inconsistency.
        """
        L = self.load_resolution
        side = self.windows.side(L, resolution, self.windows.crop_fraction)
        span = L - side  # top-left positions lie in [0, span]
        if span == 0:
            raise ValueError(f"crop sampling needs frames larger than the crop: frames {L} px, crop {side} px "
                             f"(set data.load_resolution above model.resolution, or a smaller train.window)")
        vids = torch.randint(len(self.videos), (n,), generator=gen).tolist()
        fr = torch.rand(n, generator=gen)
        pos = _window_positions(n, span, gen, windows=2)  # [n, crop, (top, left)]
        same = (pos[:, 0] == pos[:, 1]).all(dim=1)
        # Two crops at one place would be a perfect real-looking pair: move the second one.
        pos[same, 1, 1] = (pos[same, 0, 1] + 1 + torch.randint(span, (int(same.sum()),), generator=gen)) % (span + 1)
        flip = (torch.rand(n, generator=gen) < 0.5) if self.windows.flip_crops else torch.zeros(n, dtype=torch.bool)
        vids, fr, pos, flip = vids[part], fr[part], pos[part], flip[part]
        n = len(vids)
        crops, frames = [], []
        for i, v in enumerate(vids):
            f = int(fr[i] * len(self.videos[v]))
            frame = self.videos[v][f]  # [3, L, L]
            frames.append((v, f))
            for k in range(2):
                top, left = pos[i, k].tolist()
                crops.append(frame[:, top : top + side, left : left + side])
        x = to_float(torch.stack(crops))  # [2n, 3, side, side]
        x = F.interpolate(x, size=(resolution, resolution), mode="area").unflatten(0, (n, 2))
        x = torch.where(flip[:, None, None, None, None], x.flip(-1), x)
        boxes = torch.cat([pos, torch.full((n, 2, 1), side)], dim=2)
        return CropPairs(x, torch.tensor(frames), boxes)
