"""Real training data for one worker: photos for D_st, video frames for D_pair and crops.

Photos and frames are decoded once (centre square crop, resized to `load_resolution`)
and held as uint8 tensors; every batch is drawn with a `torch.Generator` the trainer seeds
from (seed, step), so sampling is reproducible and a resumed run draws exactly the batches
the uninterrupted run would have drawn. Each call draws the random numbers of the whole
global batch and materialises only this worker's `part`, so N workers together see exactly
the batch one worker would see.

The loader keeps frames at a higher resolution than the model (2x by default) so crop
sampling (paper 3.1) can cut two crops from one real frame and still have real detail.
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


@dataclass
class CropPairs:
    images: torch.Tensor  # [B, 2, 3, r, r]
    frames: torch.Tensor  # [B, 2] (video index, frame index) of the one frame both crops come from
    boxes: torch.Tensor  # [B, 2, 3]: (top, left, side) of each crop in load-resolution pixels


class TrainingData:
    """In-memory photos [N, 3, L, L] and videos (list of [T, 3, L, L]) as uint8."""

    def __init__(self, photos: torch.Tensor, videos: list[torch.Tensor]):
        if len(photos) == 0:
            raise ValueError("no training photos")
        if not videos or any(len(v) < 2 for v in videos):
            raise ValueError("need at least one time-lapse video with two or more frames")
        self.photos = photos
        self.videos = videos
        self.load_resolution = photos.shape[-1]

    @classmethod
    def load(cls, images_uri: str, videos_uri: str, load_resolution: int,
             log: Callable[[str], None] | None = None) -> "TrainingData":
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
        return cls(as_chw(np.stack(photos)), [as_chw(v) for v in videos])

    # --- batches -------------------------------------------------------------------------
    def sample_images(self, n: int, resolution: int, gen: torch.Generator, part: slice = slice(None)) -> torch.Tensor:
        """Random photos, randomly flipped: [n, 3, r, r] in [-1, 1] (rows `part` of them)."""
        idx = torch.randint(len(self.photos), (n,), generator=gen)[part]
        flip = (torch.rand(n, generator=gen) < 0.5)[part]
        x = to_float(self.photos[idx])
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return resize_to(x, resolution)

    def sample_pairs(self, n: int, resolution: int, gen: torch.Generator, part: slice = slice(None)) -> torch.Tensor:
        """Real pairs: two distinct frames of one video, any order and distance, flipped alike.

        Returns [n, 2, 3, r, r] in [-1, 1] (rows `part` of them).
        """
        vids = torch.randint(len(self.videos), (n,), generator=gen)[part].tolist()
        u = torch.rand(n, 2, generator=gen)[part]
        flip = (torch.rand(n, generator=gen) < 0.5)[part]
        n = len(vids)
        pairs = []
        for i, v in enumerate(vids):
            t = len(self.videos[v])
            a = int(u[i, 0] * t)
            b = (a + 1 + int(u[i, 1] * (t - 1))) % t  # uniform over the other t-1 frames
            pairs.append(self.videos[v][[a, b]])
        x = to_float(torch.stack(pairs))  # [n, 2, 3, L, L]
        x = torch.where(flip[:, None, None, None, None], x.flip(-1), x)
        return resize_to(x.flatten(0, 1), resolution).unflatten(0, (n, 2))

    def sample_crop_pairs(self, n: int, resolution: int, scale: float, gen: torch.Generator,
                          part: slice = slice(None)) -> CropPairs:
        """Crop sampling (paper 3.1): two crops of ONE real frame at different places.

        They stand in for D_pair's fake pair, so D_pair cannot tell real from fake by image
        quality and has to look for pairwise inconsistency.
        """
        L = self.load_resolution
        side = max(resolution, int(round(scale * L)))
        side = min(side, L)
        span = L - side  # top-left positions lie in [0, span]
        if span == 0:
            raise ValueError(f"crop sampling needs frames larger than the crop: frames {L} px, crop {side} px "
                             f"(set data.load_resolution above model.resolution or train.crop_scale < 1)")
        vids = torch.randint(len(self.videos), (n,), generator=gen).tolist()
        fr = torch.rand(n, generator=gen)
        pos = torch.randint(span + 1, (n, 2, 2), generator=gen)  # [n, crop, (top, left)]
        same = (pos[:, 0] == pos[:, 1]).all(dim=1)
        # Two crops at one place would be a perfect real-looking pair: move the second one.
        pos[same, 1, 1] = (pos[same, 0, 1] + 1 + torch.randint(span, (int(same.sum()),), generator=gen)) % (span + 1)
        vids, fr, pos = vids[part], fr[part], pos[part]
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
        boxes = torch.cat([pos, torch.full((n, 2, 1), side)], dim=2)
        return CropPairs(x, torch.tensor(frames), boxes)
