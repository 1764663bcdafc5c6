"""The SR training set, built as the paper says (3.2, "Super Resolution"):

    "To obtain the (hi-res, low-res) pair, we take a frame I from our video dataset as a
    hi-res image, we downsample it and run the first two steps of inference and obtain an
    (imperfect) low-res image."

So a pair is (frame at 4R px, G's reconstruction at R px of the frame downsampled to R px by
the encoder E and the latent optimisation O), R the run's resolution. The network then learns
to undo G's imperfections as well as the missing resolution, which is what it meets at
animation time.

Inversion costs hundreds of G passes per batch, so pairs are a stage of their own, cached in

    RUN/superres/pairs/settings.json    what the pairs depend on: G and E checkpoints, sizes, O's settings
    RUN/superres/pairs/<key>.npz        one shard per video: hi [n, 4R, 4R, 3], lo [n, R, R, 3] uint8,
                                        frame [n] indices, l1 [n] inversion errors, source, skipped

Each shard is written once (atomically), so a killed build resumes with the videos not done
yet; a later `train-superres` reuses them all. Adding videos builds only their shards.
Frames are batched through the `Inverter` `invert.batch` at a time, across videos.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from deeplandscape import storage
from deeplandscape.config import Config
from deeplandscape.data.training import VIDEO_SUFFIXES, to_float
from deeplandscape.data.transforms import square_resize
from deeplandscape.evaluate.image_metrics import LPIPSLoss
from deeplandscape.invert.encoder import load_encoder, mean_w
from deeplandscape.invert.inversion import Inverter, METHODS
from deeplandscape.runs import load_model, superres_dir
from deeplandscape.superres.nets import SCALE
from deeplandscape.video import iter_frames, probe_video

PAIR_METHODS = ("E", "EO", "EOI", "MO")  # methods without per-photo fine-tuning: G stays the run's G



def pairs_dir(run_dir: str) -> str:
    return storage.join(superres_dir(run_dir), "pairs")


def list_videos(uri: str) -> list[str]:
    """Sorted video URIs under a folder or s3:// prefix (or the one file given)."""
    if not uri:
        raise ValueError("train-superres needs --videos: a folder or s3:// prefix of time-lapse videos")
    videos = [v for v in storage.list_files(uri) if v.lower().endswith(VIDEO_SUFFIXES)]  # FileNotFoundError names uri
    if not videos:
        raise FileNotFoundError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) found at {uri}")
    return videos


def shard_uri(run_dir: str, video: str) -> str:
    """One shard per video, named by a hash of its URI (stable when the list of videos grows)."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(video.rstrip("/")).stem)[:40]
    return storage.join(pairs_dir(run_dir), f"{hashlib.sha1(video.encode()).hexdigest()[:12]}-{stem}.npz")


@dataclass(frozen=True)
class PairSettings:
    """Everything a shard's content depends on besides its video."""

    generator: str  # checkpoint directory name of G (step-NNNNNNNN)
    encoder: str  # checkpoint directory name of E ("" for MO)
    method: str
    lr_size: int  # R
    hr_size: int  # 4R
    frames_per_video: int
    optimisation: dict  # invert.* values step O reads

    @classmethod
    def of(cls, cfg: Config, generator_ckpt: str, encoder_ckpt: str, resolution: int) -> "PairSettings":
        iv = cfg.invert
        keys = ("opt_steps", "opt_lr", "opt_patience", "noise_lr_mult", "init_weight", "opt_l1", "opt_perceptual",
                "perceptual_net")
        return cls(Path(generator_ckpt).name, Path(encoder_ckpt).name if encoder_ckpt else "", cfg.superres.pair_method,
                   resolution, SCALE * resolution, cfg.superres.frames_per_video, {k: getattr(iv, k) for k in keys})


def check_settings(run_dir: str, settings: PairSettings, rebuild: bool = False, log=print) -> None:
    """Refuse to mix pairs built with other settings; `rebuild` deletes the old ones first."""
    uri = storage.join(pairs_dir(run_dir), "settings.json")
    if storage.exists(uri):
        old = json.loads(storage.read_text(uri))
        new = json.loads(json.dumps(asdict(settings)))
        if rebuild or old != new:
            if not rebuild:
                diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                raise ValueError(f"{pairs_dir(run_dir)} holds pairs built with other settings (differ in: "
                                 f"{', '.join(diff)}; e.g. G or E was trained further); add --rebuild-pairs to "
                                 "delete them and build new ones")
            log(f"pairs: deleting {pairs_dir(run_dir)} (--rebuild-pairs)")
            storage.delete_dir(pairs_dir(run_dir))
    storage.write_text(uri, json.dumps(asdict(settings), indent=2, sort_keys=True))


def frame_indices(num_frames: int, count: int) -> list[int]:
    """`count` evenly spaced frame indices, first and last included."""
    return sorted({int(round(i)) for i in np.linspace(0, max(num_frames - 1, 0), count)})


def read_frames(uri: str, count: int, size: int) -> tuple[np.ndarray, list[int], str]:
    """`count` evenly spaced frames, centre square crops resized to `size`: ([n, size, size, 3]
    uint8, indices, ""), or an empty array and the reason when the video is too small."""
    with tempfile.TemporaryDirectory() as tmp:
        path = storage.resolve(uri)[1]
        if storage.is_remote(uri):
            path = os.path.join(tmp, "video" + os.path.splitext(uri)[1])
            Path(path).write_bytes(storage.read_bytes(uri))
        info = probe_video(path)
        if min(info.width, info.height) < size:
            return (np.zeros((0, size, size, 3), np.uint8), [],
                    f"{info.width}x{info.height} is smaller than the {size} px hi-res side")
        wanted = frame_indices(info.num_frames, count)
        frames, found = [], []
        for i, frame in enumerate(iter_frames(path)):  # streamed: a long video is never held whole
            if i in wanted:
                frames.append(square_resize(frame, size))  # LANCZOS down to the hi-res side
                found.append(i)
            if i >= wanted[-1]:
                break
    if not frames:
        return np.zeros((0, size, size, 3), np.uint8), [], "no decodable frames"
    return np.stack(frames), found, ""


def write_shard(uri: str, video: str, hi: np.ndarray, lo: np.ndarray, frames: list[int], l1: list[float],
                skipped: str = "") -> None:
    buf = io.BytesIO()
    np.savez(buf, hi=hi, lo=lo, frame=np.asarray(frames, dtype=np.int64), l1=np.asarray(l1, dtype=np.float32),
             source=np.asarray(video), skipped=np.asarray(skipped))
    storage.write_bytes(uri, buf.getvalue())  # atomic: a shard is there whole or not at all


def to_uint8_hwc(x: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] in [-1, 1] -> [N, H, W, 3] uint8."""
    return x.add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def invert_frames(inverter, method: str, hi: np.ndarray, batch: int, seed: int) -> tuple[np.ndarray, list[float]]:
    """Low-res halves of the pairs: hi [n, 4R, 4R, 3] uint8 -> G's reconstruction of each frame
    box-downsampled to R px ([n, R, R, 3] uint8) and the per-frame L1 after inversion."""
    r = inverter.resolution
    lo, l1 = [], []
    for start in range(0, len(hi), batch):
        x = to_float(torch.from_numpy(hi[start : start + batch]).permute(0, 3, 1, 2))  # [b, 3, 4R, 4R]
        x = F.interpolate(x, size=(r, r), mode="area").to(inverter.device)  # exact 4x4 box filter
        inv = inverter.invert(x, method, None, seeds=[seed + start + i for i in range(len(x))])
        lo.append(to_uint8_hwc(inverter.reconstruct(inv)))
        l1 += list(inv.losses.values())[-1]
    return np.concatenate(lo), l1


def build_pairs(cfg: Config, run_dir: str, videos: list[str], rank: int = 0, world_size: int = 1,
                device: torch.device | str = "cpu", log=print) -> int:
    """Build the shards of this rank's videos (every world_size-th) that are missing; returns
    the number of pairs made. Loads G and E once."""

    sr = cfg.superres
    todo = [v for i, v in enumerate(videos) if i % world_size == rank and not storage.exists(shard_uri(run_dir, v))]
    if not todo:
        return 0
    model = load_model(run_dir, device)
    uses_encoder = METHODS[sr.pair_method].init_w == "encoder"
    encoder = load_encoder(run_dir, device) if uses_encoder else None
    perceptual = None
    if cfg.invert.opt_perceptual > 0:

        perceptual = LPIPSLoss(cfg.invert.perceptual_net, torch.device(device))
    inverter = Inverter(model.G, model.resolution, model.alpha, cfg.invert, encoder, perceptual,
                        w_avg=None if uses_encoder else mean_w(model.G))
    hr = SCALE * model.resolution
    made = 0
    group: list[tuple[str, np.ndarray, list[int]]] = []

    def flush() -> None:
        nonlocal made
        if not group:
            return
        hi = np.concatenate([g[1] for g in group])
        seed = int(hashlib.sha1(group[0][0].encode()).hexdigest()[:7], 16)
        lo, l1 = invert_frames(inverter, sr.pair_method, hi, cfg.invert.batch, seed)
        start = 0
        for video, frames, idx in group:
            n = len(frames)
            write_shard(shard_uri(run_dir, video), video, frames, lo[start : start + n], idx, l1[start : start + n])
            log(f"pairs: {Path(video).name}: {n} pair(s), inversion L1 {np.mean(l1[start : start + n]):.3f}")
            start += n
        made += len(hi)
        group.clear()

    for video in todo:
        frames, idx, reason = read_frames(video, sr.frames_per_video, hr)
        if reason:  # recorded, so the next run does not decode it again
            write_shard(shard_uri(run_dir, video), video, frames, np.zeros((0, model.resolution, model.resolution, 3),
                                                                            np.uint8), [], [], reason)
            log(f"pairs: skipped {video}: {reason}")
            continue
        group.append((video, frames, idx))
        if sum(len(g[1]) for g in group) >= cfg.invert.batch:
            flush()
    flush()
    return made


@dataclass
class PairSet:
    """Every pair in memory as uint8: hi [N, 3, 4R, 4R], lo [N, 3, R, R]."""

    hi: torch.Tensor
    lo: torch.Tensor

    def __len__(self) -> int:
        return len(self.hi)

    @classmethod
    def load(cls, run_dir: str, videos: list[str]) -> "PairSet":
        his, los, skipped = [], [], []
        for video in videos:
            uri = shard_uri(run_dir, video)
            if not storage.exists(uri):
                raise FileNotFoundError(f"no pairs for {video} ({uri}); `deeplandscape train-superres` builds them")
            with np.load(io.BytesIO(storage.read_bytes(uri)), allow_pickle=False) as z:
                if str(z["skipped"]):
                    skipped.append(f"{video}: {z['skipped']}")
                    continue
                his.append(z["hi"])
                los.append(z["lo"])
        if not his:
            raise ValueError("no training pairs: every video was skipped (" + "; ".join(skipped[:5]) + ")")
        chw = lambda a: torch.from_numpy(np.concatenate(a)).permute(0, 3, 1, 2).contiguous()  # noqa: E731
        return cls(chw(his), chw(los))

    def sample(self, n: int, hr_patch: int, gen: torch.Generator,
               part: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        """A random batch of aligned patches, flipped and rotated alike (ESRGAN's augmentation):
        (lo [n, 3, p/4, p/4], hi [n, 3, p, p]) in [-1, 1], rows `part` of them. The random
        numbers of the whole batch are drawn on every worker, so N workers see one worker's batch."""
        lr_patch = hr_patch // SCALE
        r = self.lo.shape[-1]
        if lr_patch > r:
            raise ValueError(f"superres.hr_patch {hr_patch} is larger than the {SCALE * r} px hi-res frames")
        idx = torch.randint(len(self), (n,), generator=gen)[part]
        pos = torch.randint(r - lr_patch + 1, (n, 2), generator=gen)[part]  # top, left in low-res pixels
        flip = (torch.rand(n, generator=gen) < 0.5)[part]
        rot = torch.randint(4, (n,), generator=gen)[part]
        lo, hi = [], []
        for i, (top, left) in zip(idx.tolist(), pos.tolist()):
            lo.append(self.lo[i, :, top : top + lr_patch, left : left + lr_patch])
            hi.append(self.hi[i, :, SCALE * top : SCALE * (top + lr_patch), SCALE * left : SCALE * (left + lr_patch)])
        lo_t, hi_t = to_float(torch.stack(lo)), to_float(torch.stack(hi))
        out = []
        for x in (lo_t, hi_t):
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            x = torch.stack([torch.rot90(xi, int(k), dims=(-2, -1)) for xi, k in zip(x, rot)])
            out.append(x)
        return out[0], out[1]
