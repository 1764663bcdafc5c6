"""`SuperResolver`: a trained SR network plus the guided-filter blend, for the animator.

    sr = SuperResolver.load(run_dir, device)              # RUN/superres, latest checkpoint
    video_hr = sr.upscale(frames_lr, photo_hr, dynamic)   # [T, 3, h, w] -> [T, 3, H, W]

Output size: 4x the frames', shrunk to fit `superres.max_size` (1024 by default: "up to one
megapixel"). The photo and the mask may come at any size with the frames' aspect ratio; they
are resized to the output size. Frames go through the network `superres.frames_batch` at a
time, under bf16 autocast on CUDA; call `upscale` once per chunk of a long video to bound memory
(100 frames at 1024 px are 1.2 GB of float32).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass

import torch

from deeplandscape import storage
from deeplandscape.config import SuperResConfig
from deeplandscape.runs import superres_dir
from deeplandscape.superres.blend import guided_blend, guided_filter_params, resize_to
from deeplandscape.superres.nets import SCALE, RRDBNet
from deeplandscape.train.checkpoint import latest_checkpoint, load_checkpoint


def _latest(run_dir: str):
    ckpt = latest_checkpoint(superres_dir(run_dir))
    if ckpt is None:
        raise FileNotFoundError(f"no super-resolution checkpoint under {superres_dir(run_dir)}/checkpoints "
                                f"(a step-N/ folder with config.json and state.pt): train one with "
                                f"`deeplandscape train-superres --run-dir {run_dir} --videos VIDEOS`")
    return ckpt


def output_size(h: int, w: int, max_size: int) -> tuple[int, int]:
    """(H, W) of super-resolved frames of h x w: 4x, shrunk to fit `max_size`."""
    H, W = SCALE * h, SCALE * w
    shrink = min(1.0, max_size / max(H, W))
    return max(1, round(H * shrink)), max(1, round(W * shrink))


def output_side(run_dir: str, resolution: int) -> int:
    """The side of a super-resolved square frame of `resolution` px with the run's latest SR
    checkpoint, read from its config.json (no weights loaded: for a job's driver)."""
    meta = json.loads(storage.read_text(storage.join(_latest(run_dir).uri, "config.json")))
    max_size = int(meta.get("superres", {}).get("max_size", SuperResConfig.max_size))
    return output_size(resolution, resolution, max_size)[0]


@dataclass
class SuperResolver:
    net: RRDBNet  # eval mode, no gradients
    cfg: SuperResConfig  # the checkpoint's settings (blend parameters may be changed on the object)
    device: torch.device
    checkpoint: str = ""
    amp: bool | None = None  # bf16 autocast; None: on CUDA only

    @classmethod
    def load(cls, run_dir: str, device: torch.device | str = "cpu") -> "SuperResolver":
        """The latest SR checkpoint of a run (RUN/superres/checkpoints)."""
        ckpt = _latest(run_dir)
        device = torch.device(device)
        cfg, _, state = load_checkpoint(ckpt.uri, map_location=device)  # torch.load(weights_only=True)
        net = RRDBNet(cfg.superres.nf, cfg.superres.nb, cfg.superres.gc).to(device)
        net.load_state_dict(state["G_sr"])
        return cls(net.eval().requires_grad_(False), cfg.superres, device, ckpt.uri)

    def output_size(self, h: int, w: int) -> tuple[int, int]:
        """(H, W) of the result for frames of h x w: 4x, shrunk to fit max_size."""
        return output_size(h, w, self.cfg.max_size)

    def _autocast(self):
        use = self.device.type == "cuda" if self.amp is None else self.amp
        if use and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    @torch.no_grad()
    def super_resolve(self, frames_lr: torch.Tensor) -> torch.Tensor:
        """The network alone: [T, 3, h, w] in [-1, 1] -> [T, 3, 4h, 4w] in [-1, 1] (float32)."""
        if frames_lr.ndim != 4 or frames_lr.shape[1] != 3:
            raise ValueError(f"frames must be [T, 3, h, w] in [-1, 1], got {tuple(frames_lr.shape)}")
        out = []
        for chunk in frames_lr.split(self.cfg.frames_batch):
            with self._autocast():
                out.append(self.net(chunk.to(self.device, torch.float32)).float().clamp(-1, 1))
        return torch.cat(out)

    @torch.no_grad()
    def upscale(
        self,
        frames_lr: torch.Tensor,  # [T, 3, h, w] in [-1, 1]: G's frames
        photo_hr: torch.Tensor,  # [3, H', W'] in [-1, 1]: the hi-res input photo, the frames' aspect ratio
        dynamic_mask: torch.Tensor | None,  # [1, H', W'] in [0, 1], 1 = sky/water; None: no mask, SR only
    ) -> torch.Tensor:
        """Paper Fig. 5: sky and water from the SR frames, static parts from the guided filter
        of the SR frames guided by the photo. Returns [T, 3, H, W] in [-1, 1] on `device`."""
        if frames_lr.ndim != 4 or frames_lr.shape[1] != 3:
            raise ValueError(f"frames must be [T, 3, h, w] in [-1, 1], got {tuple(frames_lr.shape)}")
        h, w = frames_lr.shape[-2:]
        size = self.output_size(h, w)
        if photo_hr.ndim != 3 or photo_hr.shape[0] != 3:
            raise ValueError(f"photo_hr must be [3, H, W] in [-1, 1], got {tuple(photo_hr.shape)}")
        if abs(photo_hr.shape[-1] / photo_hr.shape[-2] - w / h) > 0.02:
            raise ValueError(f"photo_hr is {photo_hr.shape[-1]}x{photo_hr.shape[-2]}, the frames {w}x{h}: "
                             "give the photo as the frames show it (same crop or padding)")
        if dynamic_mask is not None and tuple(dynamic_mask.shape) != (1, *photo_hr.shape[-2:]):
            raise ValueError(f"dynamic_mask must be [1, {photo_hr.shape[-2]}, {photo_hr.shape[-1]}] like "
                             f"photo_hr, got {tuple(dynamic_mask.shape)}")
        photo = resize_to(photo_hr[None].to(self.device), size)[0].clamp(-1, 1)  # [3, H, W]
        mask = None if dynamic_mask is None else resize_to(dynamic_mask[None].to(self.device), size)[0].clamp(0, 1)
        radius, subsample = guided_filter_params(max(size), self.cfg.guided_radius, self.cfg.guided_subsample)
        out = []
        for chunk in frames_lr.split(self.cfg.frames_batch):
            sr = resize_to(self.super_resolve(chunk), size).clamp(-1, 1)  # [t, 3, H, W]
            if mask is None:
                out.append(sr)
            else:
                out.append(guided_blend(sr, photo, mask, radius, self.cfg.guided_eps, subsample))
        return torch.cat(out)
