"""FVD features: the I3D Kinetics-400 TorchScript network StyleGAN-V uses, on 16-frame clips.

The network (`weights` entry "i3d", ``i3d_torchscript.pt``) is the TorchScript port of the
TF-Hub I3D that the original FVD code uses. It is called as StyleGAN-V and the FVD ports
derived from it call it: ``detector(x, rescale=..., resize=..., return_features=True)`` with
x [B, 3, T, H, W], returning the 400-d pre-softmax features [B, 400].

We always call it with ``rescale=False, resize=False`` and prepare the clips ourselves, so the
input the network sees is visible and tested here: frames as float in [0, 1], each resized to
224 x 224 (bilinear, no antialiasing, as TF's ``resize_bilinear`` in the original FVD code),
then mapped to [-1, 1]. StyleGAN-V passes uint8 clips with ``rescale=True, resize=True``,
which asks the network to do these same two steps itself.

Clips: `clip_len` consecutive frames (every `clip_step`-th frame), `clips_per_video` of them
per video with evenly spaced, deterministic starts (the first at frame 0). Videos too short
for one clip are skipped, as StyleGAN-V discards them; the pipeline counts them.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from . import weights
from .inputs import local_file
from deeplandscape.video import iter_frames, probe_video

__all__ = [
    "FEATURE_DIM",
    "CLIP_LEN",
    "I3D_SIZE",
    "TooShortError",
    "load_i3d",
    "preprocess_clips",
    "I3DFeatures",
    "clip_starts",
    "read_clips",
]

PathLike = str | os.PathLike[str]

FEATURE_DIM = 400  # Kinetics-400 logits layer, taken before the softmax
CLIP_LEN = 16  # frames per clip, as in FVD (Unterthiner et al.) and StyleGAN-V
I3D_SIZE = 224  # input side in pixels


class TooShortError(ValueError):
    """A video has fewer frames than one clip needs."""


def load_i3d(device: str | torch.device = "cpu", weights_path: PathLike | None = None) -> torch.jit.ScriptModule:
    """The I3D TorchScript module from the weight cache (or `weights_path`), in eval mode.

    TorchScript, not a pickle: loading runs no Python code from the file.
    """
    path = weights_path if weights_path is not None else weights.weight_path("i3d")
    if not os.path.isfile(path):
        raise weights.MissingWeightsError(weights._missing_message(weights.REGISTRY["i3d"], path))
    with warnings.catch_warnings():  # torch >= 2.10 deprecates TorchScript; the I3D port exists only as one
        warnings.filterwarnings("ignore", message=".*torch.jit.load.*", category=FutureWarning)
        return torch.jit.load(str(path), map_location=torch.device(device)).eval()


def preprocess_clips(clips: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [B, T, H, W, 3] -> float32 [B, 3, T, 224, 224] in [-1, 1] (see the module doc)."""
    x = torch.as_tensor(clips)
    assert x.ndim == 5 and x.shape[-1] == 3 and x.dtype == torch.uint8, (tuple(x.shape), x.dtype)
    b, t, h, w, _ = x.shape
    frames = x.reshape(b * t, h, w, 3).permute(0, 3, 1, 2).float() / 255  # [B*T, 3, H, W] in [0, 1]
    if (h, w) != (I3D_SIZE, I3D_SIZE):
        frames = F.interpolate(frames, size=(I3D_SIZE, I3D_SIZE), mode="bilinear", align_corners=False)
    frames = frames * 2 - 1
    return frames.reshape(b, t, 3, I3D_SIZE, I3D_SIZE).permute(0, 2, 1, 3, 4).contiguous()


class I3DFeatures:
    """400-d I3D features of clips; load once, call per batch."""

    def __init__(self, device: str | torch.device = "cpu", weights_path: PathLike | None = None):
        self.device = torch.device(device)
        self.model = load_i3d(self.device, weights_path)

    @torch.no_grad()
    def features(self, clips: np.ndarray | torch.Tensor, batch_size: int = 8) -> np.ndarray:
        """uint8 [N, T, H, W, 3] -> float64 [N, 400]."""
        out = np.empty((len(clips), FEATURE_DIM), dtype=np.float64)
        for i in range(0, len(clips), batch_size):
            x = preprocess_clips(clips[i:i + batch_size]).to(self.device)  # [B, 3, T, 224, 224]
            f = self.model(x, rescale=False, resize=False, return_features=True)  # [B, 400]
            assert f.shape == (x.shape[0], FEATURE_DIM), f"I3D returned {tuple(f.shape)}, expected [B, {FEATURE_DIM}]"
            out[i:i + x.shape[0]] = f.double().cpu().numpy()
        return out


def clip_starts(num_frames: int, clip_len: int = CLIP_LEN, clip_step: int = 1, clips_per_video: int = 1) -> list[int]:
    """First-frame indices of evenly spaced clips that fit in the video (the first at 0)."""
    span = (clip_len - 1) * clip_step + 1  # frames one clip covers
    room = num_frames - span
    if room < 0:
        raise TooShortError(f"{num_frames} frames, a clip of {clip_len} every {clip_step} needs {span}")
    if clips_per_video == 1:
        return [0]
    return sorted({round(k * room / (clips_per_video - 1)) for k in range(clips_per_video)})


def read_clips(uri: str, clip_len: int = CLIP_LEN, clip_step: int = 1, clips_per_video: int = 1) -> np.ndarray:
    """The clips of one video (local or s3://): uint8 [K, clip_len, H, W, 3].

    Decodes the video once, streaming, and keeps only the frames the clips use.
    """
    with local_file(uri) as path:
        starts = clip_starts(probe_video(path).num_frames, clip_len, clip_step, clips_per_video)
        wanted = {s + k * clip_step for s in starts for k in range(clip_len)}
        last = max(wanted)
        kept: dict[int, np.ndarray] = {}
        frames = iter_frames(path)
        try:
            for i, frame in enumerate(frames):
                if i in wanted:
                    kept[i] = frame
                if i >= last:
                    break
        finally:
            frames.close()  # closes the container now, not at garbage collection
    if len(kept) < len(wanted):  # the header promised more frames than decode gave
        raise TooShortError(f"decoded {len(kept)} of the {len(wanted)} frames the clips need")
    return np.stack([np.stack([kept[s + k * clip_step] for k in range(clip_len)]) for s in starts])
