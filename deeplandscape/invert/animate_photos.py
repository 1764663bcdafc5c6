"""Bringing photos to life: read, mask, invert in batches, render time-lapses, write them.

`PhotoAnimator` loads the run's generator, the encoder, the perceptual network and the
segmentation model once, then takes photos in batches of `invert.batch`; the bucket job runs
one per Ray Data actor. `animate_photos` is the `deeplandscape animate` command: for each
photo it writes

    OUT/<photo name>/<direction>.mp4 (+ .jpg poster)   one per homography
    OUT/<photo name>/compare.png                         input | reconstruction | first frame
    OUT/<photo name>/inversion.json                      method, losses, horizon, mask source

With `superres` the videos are x4 (paper Fig. 5: the SR network on each frame, static parts
from a guided filter guided by the photo read at that size; RUN/superres, train-superres).

A photo that cannot be read is reported and skipped; the others go on.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image

from deeplandscape import storage
from deeplandscape.animate.homography import CLOCK_DIRECTIONS, Motion, direction_motion
from deeplandscape.animate.warp import animate_noise
from deeplandscape.config import Config, InvertConfig, apply_overrides, read_preset, validate_invert
from deeplandscape.data.synth import is_mask_file
from deeplandscape.evaluate.image_metrics import LPIPSLoss
from deeplandscape.invert.encoder import load_encoder, mean_w
from deeplandscape.invert.inversion import METHODS, Inversion, Inverter, resolve_method, run_generator
from deeplandscape.invert.lighting import lighting_path, load_keyframes, load_lighting
from deeplandscape.invert.masks import (NO_SEGMENTATION, Segmenter, horizon_from_sky, resolve_segmentation,
                                       sky_from_dynamic)
from deeplandscape.invert.photos import Framing, PhotoError, decode_photo, frame, load_mask_next_to, to_model_input
from deeplandscape.nets.generator import level_of
from deeplandscape.render import Animation, VideoOutputs, to_uint8, upscale
from deeplandscape.runs import load_model
from deeplandscape.superres.resolver import SuperResolver
from deeplandscape.video import VideoWriter

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


@dataclass
class Photo:
    """One input, read and framed for the model."""

    uri: str
    name: str  # output folder name
    square: np.ndarray  # [R, R, 3] uint8, what the model reconstructs
    framing: Framing  # where the photo is in the square
    dynamic: np.ndarray | None  # [R, R] bool, sky + water; None when unknown
    horizon: float
    mask_source: str  # "file" | "segmentation" | "none"
    hires: np.ndarray | None = None  # [H, H, 3] uint8: the square at the super-resolution size (--superres)
    hires_dynamic: np.ndarray | None = None  # [H, H] bool: the mask file at that size


def inversion_config(cfg: Config, preset: str | None = None, overrides: dict | None = None) -> InvertConfig:
    """A run's `invert` settings, then an inversion preset's (configs/NAME.toml), then `--set`s."""
    cfg = Config.from_dict(cfg.to_dict())
    if preset:
        keys = read_preset(preset)
        other = sorted(k for k in keys if not k.startswith("invert."))
        if other:
            raise ValueError(f"inversion preset {preset!r} may only set invert.* keys, not {other}")
        apply_overrides(cfg, keys)
    apply_overrides(cfg, overrides or {})
    validate_invert(cfg.invert)
    # A relative path typed by the user means their folder, not a Ray worker's.
    cfg.invert.segmentation_model = resolve_segmentation(cfg.invert.segmentation_model)
    return cfg.invert


def needs_perceptual(icfg: InvertConfig, method: str) -> bool:
    steps = METHODS[resolve_method(method, True)]
    return (icfg.opt_perceptual > 0 and (steps.optimise_w or steps.optimise_s)) or \
        (icfg.finetune_perceptual > 0 and steps.finetune)


class PhotoAnimator:
    """Models loaded once; `read` a photo, `invert` a batch, `render` / `write` one photo."""

    def __init__(self, run_dir: str, icfg: InvertConfig | None = None, device: str | torch.device = "cpu",
                 horizon: float | None = None, log=print, lighting: str = "none", keyframes: str | None = None,
                 superres: bool = False):

        self.device = torch.device(device)
        self.model = load_model(run_dir, self.device)
        self.cfg = icfg or self.model.cfg.invert
        self.resolution, self.log, self.horizon = self.model.resolution, log, horizon
        method = self.cfg.method
        uses_encoder = METHODS[resolve_method(method, True)].init_w == "encoder"
        encoder = load_encoder(run_dir, self.device) if uses_encoder else None
        perceptual = LPIPSLoss(self.cfg.perceptual_net, self.device) if needs_perceptual(self.cfg, method) else None
        segmentation = resolve_segmentation(self.cfg.segmentation_model)  # ADE20K when its files are cached
        self.segmenter = (Segmenter(segmentation, self.cfg.dynamic_classes, self.cfg.sky_classes, self.device)
                          if segmentation != NO_SEGMENTATION else None)
        self.lighting, self.A, self.keyframes = lighting, None, {}
        if lighting != "none":

            self.A = load_lighting(run_dir, self.device)
            self.keyframes = load_keyframes(keyframes or storage.join(run_dir, "lighting", "keyframes.json"))
        self.superres, self.hires_size = None, 0
        if superres:  # paper Fig. 5: RUN/superres, trained by `deeplandscape train-superres`

            self.superres = SuperResolver.load(run_dir, self.device)
            self.hires_size = self.superres.output_size(self.resolution, self.resolution)[0]
        self.inverter = Inverter(self.model.G, self.resolution, self.model.alpha, self.cfg, encoder, perceptual,
                                 w_avg=None if encoder is not None else mean_w(self.model.G), log=log)
        self.lighting_path("check")  # an unknown lighting name fails here, not once per photo

    # --- input -----------------------------------------------------------------------------
    def read(self, uri: str, name: str | None = None, data: bytes | None = None) -> Photo:
        """Decode and frame one photo; find its mask (file next to it, else segmentation)."""
        data = storage.read_bytes(uri) if data is None else data
        img = decode_photo(data, uri, min_side=self.resolution)
        framed = frame(uri, img, load_mask_next_to(uri), self.resolution, self.cfg.fit, self.hires_size)
        dynamic, sky, source = framed.dynamic, None, "none"
        if dynamic is not None:
            sky, source = sky_from_dynamic(dynamic), "file"
        elif self.segmenter is not None:
            dynamic, sky = self.segmenter(framed.square)
            source = "segmentation"
        horizon = self.horizon if self.horizon is not None else (
            horizon_from_sky(sky, self.cfg.horizon_margin) if sky is not None else 0.5)
        return Photo(uri, name or Path(uri.rstrip("/")).stem, framed.square, framed.framing, dynamic, horizon, source,
                     framed.hires, framed.hires_dynamic)

    # --- inversion -------------------------------------------------------------------------
    def invert(self, photos: list[Photo]) -> Inversion:
        x = torch.stack([to_model_input(p.square) for p in photos]).to(self.device)
        r = self.resolution
        dyn = torch.stack([torch.from_numpy(p.dynamic).float()[None] if p.dynamic is not None
                           else torch.full((1, r, r), float("nan")) for p in photos])
        seeds = [zlib.crc32(p.name.encode()) for p in photos]  # random S (E, I2S) per photo, batch-independent
        return self.inverter.invert(x, self.cfg.method, dyn, seeds)

    # --- output ----------------------------------------------------------------------------
    def lighting_path(self, name: str):
        """The photo's lighting path (None: the photo's own lighting throughout)."""
        if self.A is None:
            return None

        from_level = level_of(min(self.cfg.lighting_from_resolution, self.resolution))
        return lighting_path(self.lighting, self.keyframes, self.model.cfg.model.z_dyn_dim, from_level,
                             zlib.crc32(name.encode()), self.device)

    @torch.no_grad()
    def render(self, inv: Inversion, animation: Animation, frames: int, batch: int = 16,
               lighting=None) -> Iterator[np.ndarray]:
        """Frames [n, R, R, 3] uint8 of one inverted photo (`inv` of length 1): S_dyn warped by
        the homography, kept at zero on static pixels; S_st fixed; W fixed or moved along
        `lighting` (a `LightingPath`)."""
        G = self.inverter.G
        params = None if inv.params is None else {k: v[0] for k, v in inv.params.items()}
        for start in range(0, frames, batch):
            idx = range(start, min(frames, start + batch))
            n = len(idx)
            S_dyn = animate_noise(inv.S_dyn, animation.motion, animation.horizon, idx, animation.speed,
                                  authors_mode=animation.authors_mode, out_size=inv.resolution)
            S_dyn = [s * k for s, k in zip(S_dyn, inv.keep_dyn)]
            S_st = [s.expand(n, -1, -1, -1) for s in inv.S_st]
            ws = inv.ws.expand(n, -1, -1) if lighting is None else lighting.styles(self.A, inv.ws, list(idx), frames)
            if params is None:
                img = run_generator(G, ws, S_st, S_dyn, inv.resolution, inv.alpha)
            else:
                from torch.func import functional_call

                img = functional_call(G, params, (ws, S_st, S_dyn if G.cfg.separate_noise else None,
                                                  inv.resolution, inv.alpha))
            yield to_uint8(img)

    def write(self, photo: Photo, inv: Inversion, out_dir: str, directions: list[str], frames: int,
              speed: float, outputs: VideoOutputs, motions: dict[str, Motion] | None = None) -> dict:
        """All outputs of one photo under `out_dir` (local or s3://)."""
        import tempfile

        motions = motions or {}
        written = []
        with tempfile.TemporaryDirectory() as tmp:
            first = None
            for direction in directions:
                animation = Animation(motion=direction_motion(direction, motions), speed=speed,
                                      horizon=photo.horizon)
                path = Path(tmp) / f"{direction}.mp4"
                video_first = self._encode(photo, inv, animation, frames, outputs, path)
                first = video_first if first is None else first
                written += [path] + ([path.with_suffix(".jpg")] if outputs.poster else [])
            recon = to_uint8(self.inverter.reconstruct(inv))[0]
            panels = [photo.square, recon] + ([first] if first is not None else [])
            compare = upscale(np.concatenate([photo.framing.crop(p) for p in panels], axis=1), outputs.scale)
            Image.fromarray(compare).save(Path(tmp) / "compare.png")
            written.append(Path(tmp) / "compare.png")
            meta = {"input": photo.uri, "method": inv.method, "losses": inv.losses, "horizon": photo.horizon,
                    "mask": photo.mask_source, "directions": directions, "frames": frames, "speed": speed,
                    "resolution": inv.resolution, "lighting": self.lighting,
                    "superres": self.superres.checkpoint if self.superres else None}
            (Path(tmp) / "inversion.json").write_text(json.dumps(meta, indent=2))
            written.append(Path(tmp) / "inversion.json")
            keys = []
            for path in written:  # upload/copy only when everything for the photo is made
                key = storage.join(out_dir, path.name)
                storage.write_bytes(key, path.read_bytes())
                keys.append(key)
        return {**meta, "outputs": keys}

    def _encode(self, photo: Photo, inv: Inversion, animation: Animation, frames: int, outputs: VideoOutputs,
                path: Path) -> np.ndarray:
        """Write one mp4 (+ poster); returns its first frame [R, R, 3] (uncropped, model resolution).
        With super-resolution the video is at `hires_size` (`outputs.scale` is for compare.png only)."""
        first = None
        side = self.hires_size if self.superres else inv.resolution * outputs.scale
        height, width = photo.framing.crop(np.zeros((side, side, 1), np.uint8)).shape[:2]
        finish = self._super_resolver(photo) if self.superres else (lambda chunk: upscale(chunk, outputs.scale))
        with VideoWriter(path, fps=outputs.fps, width=width, height=height, crf=outputs.crf) as out:
            for chunk in self.render(inv, animation, frames, lighting=self.lighting_path(photo.name)):
                if first is None:
                    first = chunk[0]
                shown = photo.framing.crop(finish(chunk))
                out.write(np.ascontiguousarray(shown))
                if outputs.poster and out.frames_written == len(chunk):
                    Image.fromarray(shown[0]).save(path.with_suffix(".jpg"), quality=92)
        return first

    def _super_resolver(self, photo: Photo):
        """chunk [n, R, R, 3] uint8 -> [n, H, H, 3] uint8: SR frames, and in static parts the
        guided filter of them guided by the hi-res photo (paper Fig. 5)."""
        if photo.hires is None:
            raise ValueError(f"{photo.uri}: no hi-res copy of the photo for --superres (read it with this animator)")
        photo_hr = to_model_input(photo.hires)  # [3, H, H]
        mask = None
        if photo.hires_dynamic is not None:  # the mask file, read at the output size
            mask = torch.from_numpy(photo.hires_dynamic).float()[None]
        elif photo.dynamic is not None:  # segmentation at model resolution, smoothly enlarged: a soft weight
            mask = torch.from_numpy(photo.dynamic).float()[None, None]
            mask = torch.nn.functional.interpolate(mask, size=photo_hr.shape[-2:], mode="bilinear",
                                                   align_corners=False)[0]
        else:
            self.log(f"  {photo.name}: no sky/water mask (no .mask.png next to it, no segmentation model): its "
                     "video is the super-resolved frames alone, without the photo's detail")

        def finish(chunk: np.ndarray) -> np.ndarray:
            lr = torch.from_numpy(chunk).permute(0, 3, 1, 2).float().div(127.5).sub(1)
            return to_uint8(self.superres.upscale(lr, photo_hr, mask))

        return finish


def pick_directions(name: str, count: int, explicit: list[str] | None = None) -> list[str]:
    """`explicit` if given (clock directions and angles, "45deg"), else `count` distinct clock
    directions drawn from the photo's name."""
    if explicit:
        return [direction_motion(d).name for d in explicit]  # an unknown one: ValueError naming it
    if not 1 <= count <= len(CLOCK_DIRECTIONS):
        raise ValueError(f"--directions must be 1..{len(CLOCK_DIRECTIONS)}, got {count}")
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    return [str(d) for d in rng.choice(list(CLOCK_DIRECTIONS), size=count, replace=False)]


def list_photos(inputs: list[str]) -> tuple[list[str], list[dict]]:
    """Photo URIs from files, folders and s3:// prefixes (masks and non-images skipped), and
    the inputs that gave none, each {"input", "error"}: the other inputs go on without them."""

    found: list[str] = []
    missing: list[dict] = []
    for item in inputs:
        if storage.is_remote(item) or Path(item).is_dir():
            files = [f for f in storage.list_files(item) if f.lower().endswith(PHOTO_SUFFIXES) and not is_mask_file(f)]
            if files:
                found += files
            else:
                missing.append({"input": item, "error": f"no photos ({', '.join(PHOTO_SUFFIXES)}) under {item}"})
        elif storage.exists(item):
            found.append(item if storage.is_remote(item) else str(Path(item).resolve()))
        else:
            missing.append({"input": item, "error": f"no such photo or folder: {item}"})
    return found, missing


def animate_photos(inputs: list[str], run_dir: str, out: str, homographies: int = 5, frames: int = 100,
                   directions: list[str] | None = None, speed: float = 2.5, icfg: InvertConfig | None = None,
                   horizon: float | None = None, outputs: VideoOutputs = VideoOutputs(), device: str = "cpu",
                   log=print, lighting: str = "none", keyframes: str | None = None, superres: bool = False) -> dict:
    """`deeplandscape animate`: every photo in `inputs` -> time-lapses under `out`."""
    uris, failed = list_photos(inputs)
    for f in failed:
        log(f"  skipped: {f['error']}")
    if not uris:
        raise FileNotFoundError(f"no photo to animate in {', '.join(inputs)}")
    animator = PhotoAnimator(run_dir, icfg, device, horizon, log, lighting, keyframes, superres)
    names = _unique_names(uris)
    done = []
    batch: list[Photo] = []
    t0 = time.perf_counter()

    def flush() -> None:
        if not batch:
            return
        log(f"inverting {len(batch)} photo(s): {', '.join(p.name for p in batch)}")
        inv = animator.invert(batch)
        for i, photo in enumerate(batch):
            result = animator.write(photo, inv.photo(i), storage.join(out, photo.name),
                                    pick_directions(photo.name, homographies, directions), frames, speed, outputs)
            done.append(result)
            log(f"  {photo.name}: {result['method']}, L1 {' -> '.join(f'{v[0]:.3f}' for v in inv.photo(i).losses.values())}, "
                f"{len(result['directions'])} video(s) in {storage.join(out, photo.name)}")
        batch.clear()

    for uri, name in zip(uris, names):
        try:
            batch.append(animator.read(uri, name))
        except PhotoError as e:
            failed.append({"input": uri, "error": str(e)})
            log(f"  skipped: {e}")
        if len(batch) == animator.cfg.batch:
            flush()
    flush()
    summary = {"photos": len(uris), "animated": len(done), "failed": failed, "results": done,
               "seconds": round(time.perf_counter() - t0, 1), "run_dir": run_dir, "checkpoint": animator.model.checkpoint}
    storage.write_text(storage.join(out, "summary.json"), json.dumps(summary, indent=2))
    log(f"animated {len(done)} of {len(uris)} photo(s) in {summary['seconds']:.0f} s -> {out}"
        + (f"; {len(failed)} failed (see summary.json)" if failed else ""))
    return summary


def _unique_names(uris: list[str]) -> list[str]:
    """Output folder names: the file stem, with a suffix where two inputs share one."""
    seen: dict[str, int] = {}
    names = []
    for uri in uris:
        stem = Path(uri.rstrip("/")).stem
        seen[stem] = seen.get(stem, 0) + 1
        names.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return names
