"""The generation protocol (paper section 4 "Generation", Fig. 6): FID and static consistency.

- FID between `samples` images of G (EMA, at the resolution the run has reached) and the real
  photos, downscaled to that resolution (PIL bicubic) before Inception.
- Static consistency: `pairs` pairs that share z_st and S_st and differ in z_dyn and S_dyn;
  LPIPS and SSIM between the two images of a pair on the static pixels only (sky and water
  masked out, `image_metrics`). A model with one noise input (the "original StyleGAN"
  ablation) has no S_st: its pairs differ in that single noise map and in z_dyn.

Sample i's latents come from a generator seeded by (seed, i), so a sample does not depend
on how the indices are batched or spread over workers.

Masks of generated images. A generated sample has no ground truth, so `masks` is one of:
- ``prior`` (default): one fixed mask for every sample, the ground-truth masks of the real
  photos (``NAME.mask.png``, written by `deeplandscape synth`) averaged at G's resolution;
  pixels that are sky or water in at least half of the photos are masked out. A per-data-set
  prior, not a per-sample segmentation: good for the synthetic data, whose horizons vary
  little, and an approximation everywhere else.
- ``segmentation:ade20k``: the authors' CSAIL network (`deeplandscape.invert.ade20k`).
- ``segmentation:PATH``: a TorchScript segmentation network with the contract the inversion
  uses (`deeplandscape.invert.masks.Segmenter`: ImageNet-normalised [1, 3, H, W] -> logits
  [1, C, h, w]; the run's ``invert.dynamic_classes``, ADE20K sky and water by default, are
  dynamic); a pixel is static where it is static in both images of the pair. The paper's
  protocol, given a segmentation net.
- ``none``: every pixel is compared.
"""

from __future__ import annotations

import dataclasses
import io
import os
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from deeplandscape import storage
from deeplandscape.config import InvertConfig
from deeplandscape.invert.masks import ADE20K, Segmenter, resolve_segmentation
from deeplandscape.raykit import actor_device, ensure_ray
from deeplandscape.render import to_uint8
from deeplandscape.runs import LoadedModel, load_model
from deeplandscape.train.latents import Latents, latents_ws, sample_latents, step_generator

from . import report, weights
from .fid import InceptionFeatures
from .image_metrics import LPIPS_BACKBONES, MaskedLPIPS, masked_ssim_per_image
from .inputs import MASK_SUFFIX
from .pipeline import FeatureSpec, collection_stats, run_block_stats
from .stats import frechet_distance

__all__ = [
    "PAPER_FIG6",
    "MaskSpec",
    "GenerationSettings",
    "pair_latents",
    "render_pairs",
    "prior_static_mask",
    "StaticMasks",
    "evaluate_generation",
]

LPIPS_MIN_SIZE = 16  # LPIPS-VGG pools 4 times: an 8 px image has no pixel left at its last layer

# Fig. 6 of the paper (128 px); REFERENCE.md "Evaluation protocol".
PAPER_FIG6 = {
    "original StyleGAN": {"fid": 48.40, "ssim": 0.809, "lpips": 0.049},
    "full model (+ crop sampling)": {"fid": 56.13, "ssim": 0.884, "lpips": 0.062},
}


@dataclass(frozen=True)
class MaskSpec:
    """How static pixels of generated pairs are chosen (see the module doc)."""

    kind: str = "prior"  # "prior" | "segmentation" | "none"
    path: str | None = None  # the TorchScript file for "segmentation"

    @classmethod
    def parse(cls, text: str) -> MaskSpec:
        if text in ("prior", "none"):
            return cls(text)
        if text.startswith("segmentation:") and len(text) > len("segmentation:"):
            return cls("segmentation", text.split(":", 1)[1])
        raise ValueError(f"masks must be 'prior', 'none', 'segmentation:ade20k' or 'segmentation:PATH.pt', "
                         f"got {text!r}")

    def describe(self) -> str:
        return {"prior": "prior of the real photos' ground-truth masks (one mask for every sample)",
                "none": "no mask: every pixel compared",
                "segmentation": f"segmentation {self.path}, per image"}[self.kind]


@dataclass
class GenerationSettings:
    pairs: int = 1200  # pairs for LPIPS / SSIM (paper: 1200)
    samples: int = 2400  # G samples for FID (paper: its real set has 2400 photos)
    seed: int = 0
    masks: MaskSpec = MaskSpec()
    lpips_net: str = "vgg"
    workers: int = 2  # Ray Data actors
    batch_size: int = 16  # samples per actor call
    use_gpu: bool = False
    cache: bool = True  # statistics of the real photos


# ---------------------------------------------------------------- samples and pairs

def pair_latents(G, indices: list[int], seed: int, resolution: int) -> Latents:
    """Latents of pairs (F = 2 frames) for sample indices, each drawn from its own generator."""
    return _cat([sample_latents(G, 1, 2, resolution, 0.0, step_generator(seed, i, "eval-pairs")) for i in indices])


def _cat(parts: list[Latents]) -> Latents:
    def cat(name: str):
        first = getattr(parts[0], name)
        if isinstance(first, list):  # per-level noise maps
            return [torch.cat(maps) for maps in zip(*(getattr(p, name) for p in parts))]
        return torch.cat([getattr(p, name) for p in parts])

    return Latents(**{f.name: cat(f.name) for f in dataclasses.fields(Latents)})


def _to(lat: Latents, device: torch.device) -> Latents:
    def move(v):
        return [t.to(device) for t in v] if isinstance(v, list) else v.to(device)

    return Latents(**{f.name: move(getattr(lat, f.name)) for f in dataclasses.fields(Latents)})


@torch.no_grad()
def render_pairs(G, lat: Latents, resolution: int, alpha: float) -> np.ndarray:
    """uint8 [B, 2, r, r, 3]: both frames of each pair (shared z_st, S_st; own z_dyn, S_dyn)."""
    b, f = lat.z_dyn.shape[:2]
    ws = latents_ws(G, lat)  # [B*2, L, w_dim]
    S_dyn = [s.reshape(b * f, 1, *s.shape[2:]) for s in lat.S_dyn]  # per level [B*2, 1, r, r]
    if G.cfg.separate_noise:
        img = G(ws, [s.repeat_interleave(f, 0) for s in lat.S_st], S_dyn, resolution, alpha)
    else:  # one noise input: it plays S_dyn, so the pair differs in it
        img = G(ws, S_dyn, None, resolution, alpha)
    return to_uint8(img).reshape(b, f, resolution, resolution, 3)


# ---------------------------------------------------------------- masks

def prior_static_mask(real_images: str, resolution: int, max_masks: int = 2000) -> tuple[np.ndarray, dict]:
    """bool [r, r], True where static: the real photos' masks averaged at G's resolution,
    static where fewer than half of them are sky or water. Up to `max_masks` masks, evenly
    spread over the sorted list."""
    uris = storage.list_files(real_images, (MASK_SUFFIX,))
    if not uris:
        raise FileNotFoundError(
            f"--masks prior needs ground-truth masks NAME{MASK_SUFFIX} next to the real photos in {real_images} "
            f"(deeplandscape synth writes them); give --masks segmentation:MODEL.pt or --masks none")
    pick = np.unique(np.linspace(0, len(uris) - 1, min(len(uris), max_masks)).round().astype(int))
    total = np.zeros((resolution, resolution), np.float64)
    for i in pick:
        with Image.open(io.BytesIO(storage.read_bytes(uris[i]))) as m:
            dyn = np.asarray(m.convert("L"), np.float32) / 255  # 1 = sky or water
        total += np.asarray(Image.fromarray(dyn, mode="F").resize((resolution, resolution), Image.BOX))
    dynamic_fraction = total / len(pick)
    keep = dynamic_fraction < 0.5
    return keep, {"masks_used": int(len(pick)), "masks_found": len(uris), "static_fraction": float(keep.mean())}


class StaticMasks:
    """The static-pixel masks of generated pairs, as `MaskSpec` says; built once per actor."""

    def __init__(self, spec: MaskSpec, prior: np.ndarray | None, device: torch.device,
                 invert: InvertConfig = InvertConfig()):
        self.spec = spec
        self.prior = None if prior is None else np.asarray(prior, bool)
        self.segment = None
        if spec.kind == "segmentation":

            self.segment = Segmenter(spec.path, invert.dynamic_classes, invert.sky_classes, device)

    def _dynamic(self, images: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, 3] -> bool [N, H, W], True on sky or water."""
        return np.stack([self.segment(img)[0] for img in images])

    def __call__(self, pairs: np.ndarray) -> np.ndarray:
        """uint8 [B, 2, r, r, 3] -> bool [B, r, r], True on pixels to compare."""
        b, _, h, w, _ = pairs.shape
        if self.spec.kind == "none":
            return np.ones((b, h, w), bool)
        if self.spec.kind == "prior":
            assert self.prior.shape == (h, w), (self.prior.shape, (h, w))
            return np.broadcast_to(self.prior, (b, h, w)).copy()
        dyn = self._dynamic(pairs.reshape(b * 2, h, w, 3)).reshape(b, 2, h, w)
        return ~(dyn[:, 0] | dyn[:, 1])


# ---------------------------------------------------------------- the Ray Data stage

class _PairActor:
    """Ray Data actor: loads G, Inception, LPIPS (and a segmentation net) once; per batch of
    sample indices renders the pairs, takes Inception features of each pair's first image
    (indices < samples) and masked LPIPS / SSIM of the pair (indices < pairs)."""

    def __init__(self, run_dir: str, seed: int, samples: int, pairs: int, masks: dict, prior: list | None,
                 lpips_net: str, inception_path: str, backbone_path: str, use_gpu: bool):

        device = actor_device(use_gpu)
        self.model = load_model(run_dir, device)
        self.inception = InceptionFeatures(device, inception_path)
        self.lpips = MaskedLPIPS(lpips_net, device, backbone_path)
        self.masks = StaticMasks(MaskSpec(**masks), None if prior is None else np.asarray(prior), device,
                                 self.model.cfg.invert)
        self.seed, self.samples, self.pairs, self.device = seed, samples, pairs, device

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:

        idx = batch["index"].astype(np.int64)
        m = self.model
        lat = _to(pair_latents(m.G, idx.tolist(), self.seed, m.resolution), self.device)
        pairs = render_pairs(m.G, lat, m.resolution, m.alpha)  # [B, 2, r, r, 3]
        use = idx < self.samples
        features = np.zeros((len(idx), 2048), np.float32)
        if use.any():
            features[use] = self.inception.features(pairs[use, 0])
        lp = np.full(len(idx), np.nan)
        ss = np.full(len(idx), np.nan)
        pair = idx < self.pairs
        if pair.any():
            keep = self.masks(pairs[pair])  # [P, r, r]
            lp[pair] = self.lpips.per_image(pairs[pair, 0], pairs[pair, 1], keep)
            ss[pair] = masked_ssim_per_image(pairs[pair, 0], pairs[pair, 1], keep)
        n = len(idx)
        return {"group": np.full(n, "fake"), "uri": np.asarray([f"sample {i}" for i in idx]),
                "features": features, "use_features": use, "status": np.full(n, "ok"), "message": np.full(n, ""),
                "index": idx, "lpips": lp, "ssim": ss}


def _fake_pipeline(run_dir: str, s: GenerationSettings, prior: np.ndarray | None) -> Any:
    """Statistics of the generated samples and the per-pair values, from a Ray Data actor pool."""
    import ray

    ensure_ray()
    # Weight files resolved here, on the driver, and named to the actors (their environment may differ).
    inception_path = weights.weight_path("inception")
    backbone = LPIPS_BACKBONES[s.lpips_net]
    ds = ray.data.from_items([{"index": i} for i in range(max(s.samples, s.pairs))])
    ds = ds.map_batches(
        _PairActor,
        fn_constructor_kwargs=dict(run_dir=run_dir, seed=s.seed, samples=s.samples, pairs=s.pairs,
                                   masks=dataclasses.asdict(s.masks), prior=None if prior is None else prior.tolist(),
                                   lpips_net=s.lpips_net, inception_path=str(inception_path),
                                   backbone_path=str(weights.weight_path(backbone)), use_gpu=s.use_gpu),
        batch_size=s.batch_size, compute=ray.data.ActorPoolStrategy(size=s.workers), num_cpus=1,
        **({"num_gpus": 1} if s.use_gpu else {}))
    return run_block_stats(ds, 2048, keep=("index", "lpips", "ssim"))["fake"]


# ---------------------------------------------------------------- the protocol

def _check(model: LoadedModel, s: GenerationSettings) -> None:
    if model.resolution < LPIPS_MIN_SIZE:
        raise ValueError(f"the run is at {model.resolution} px; LPIPS needs at least {LPIPS_MIN_SIZE} px: "
                         f"train further before evaluating")
    if s.samples < 2 or s.pairs < 1:
        raise ValueError(f"need samples >= 2 and pairs >= 1, got samples={s.samples}, pairs={s.pairs}")
    if s.masks.kind == "segmentation" and s.masks.path != ADE20K and not os.path.isfile(s.masks.path):
        raise FileNotFoundError(f"no segmentation model at {s.masks.path} (a local TorchScript file, or ade20k)")


def evaluate_generation(run_dir: str, real_images: str, out_dir: str, s: GenerationSettings = GenerationSettings(),
                        ) -> dict[str, Any]:
    """Run the protocol; write ``metrics.json`` and ``index.html`` to `out_dir`; return the metrics."""
    start = time.perf_counter()
    run_dir = run_dir if storage.is_remote(run_dir) else storage.resolve(run_dir)[1]  # actors may run elsewhere
    model = load_model(run_dir)  # on the driver too: resolution, and the example pairs of the report
    _check(model, s)
    if s.masks.kind == "segmentation":  # an absolute path (or the driver's weight cache) for the actors
        s = dataclasses.replace(s, masks=MaskSpec("segmentation", resolve_segmentation(s.masks.path)))
    for name in ("inception", LPIPS_BACKBONES[s.lpips_net]):
        weights.weight_path(name)  # a missing file fails now, before any work, naming the fetch command
    prior, mask_info = (prior_static_mask(real_images, model.resolution) if s.masks.kind == "prior" else (None, {}))

    spec = FeatureSpec("inception", resolution=model.resolution)
    [(real, real_info)] = collection_stats([real_images], spec, cache=s.cache, workers=s.workers,
                                           batch_size=s.batch_size, use_gpu=s.use_gpu)
    fake = _fake_pipeline(run_dir, s, prior)
    order = np.argsort(fake.kept["index"])
    index = np.asarray(fake.kept["index"])[order]
    lp, ss = np.asarray(fake.kept["lpips"], float)[order], np.asarray(fake.kept["ssim"], float)[order]
    in_pairs = index < s.pairs
    fid = frechet_distance(real.mean(), real.cov(), fake.stats.mean(), fake.stats.cov())
    metrics = {
        "protocol": "generation",
        "fid": fid,
        "lpips": float(np.nanmean(lp[in_pairs])),
        "ssim": float(np.nanmean(ss[in_pairs])),
        "lpips_std": float(np.nanstd(lp[in_pairs])),
        "ssim_std": float(np.nanstd(ss[in_pairs])),
        "pairs": int(in_pairs.sum()),
        "pairs_without_static_pixels": int(np.isnan(lp[in_pairs]).sum()),
        "samples": fake.stats.n,
        "real": real_info,
        "model": {"run_dir": run_dir, "checkpoint": model.checkpoint, "kimg": model.kimg,
                  "resolution": model.resolution, "alpha": model.alpha,
                  "separate_noise": model.cfg.model.separate_noise, "z_dyn_dim": model.cfg.model.z_dyn_dim},
        "masks": {"mode": s.masks.kind, "path": s.masks.path, "description": s.masks.describe(), **mask_info},
        "settings": {**dataclasses.asdict(s), "masks": dataclasses.asdict(s.masks), "inception": spec.settings(),
                     "lpips_net": s.lpips_net},
        "per_pair": {"lpips": lp[in_pairs].tolist(), "ssim": ss[in_pairs].tolist()},
        "paper_fig6_128px": PAPER_FIG6,
        "seconds": time.perf_counter() - start,
    }
    metrics["outputs"] = report.write_report(out_dir, "Generation protocol", metrics,
                                             _sections(metrics, model, s, prior, real, fake.stats))
    return metrics


def _sections(metrics: dict, model: LoadedModel, s: GenerationSettings, prior, real, fake) -> list[report.Section]:
    m = metrics
    summary = report.table([
        ("FID", m["fid"]), ("LPIPS (static pixels)", m["lpips"]), ("SSIM (static pixels)", m["ssim"]),
        ("pairs", m["pairs"]), ("samples for FID", m["samples"]), ("real photos", m["real"]["features"]),
        ("real statistics", m["real"]["cache"]), ("model", f"{model.resolution} px at {model.kimg:.2f} kimg"),
        ("masks", m["masks"]["description"]),
    ])
    paper = report.table([(k, f"FID {v['fid']}, SSIM {v['ssim']}, LPIPS {v['lpips']}") for k, v in PAPER_FIG6.items()])
    plots = (report.histogram({"LPIPS": m["per_pair"]["lpips"]}, "LPIPS per pair (static pixels)", "LPIPS")
             + report.histogram({"SSIM": m["per_pair"]["ssim"]}, "SSIM per pair (static pixels)", "SSIM")
             + report.spectrum_plot({"real": real.cov(), "generated": fake.cov()}, "Inception feature covariance spectra"))
    return [
        report.Section("Summary", summary),
        report.Section("The paper's Fig. 6 (128 px, real data; for orientation only)", paper
                       + "<p class='note'>Values from a different model size, data set and sample count are not "
                         "comparable to these.</p>"),
        report.Section("Distributions", plots),
        report.Section("Example pairs (frame a | frame b | compared pixels)", _example_pairs(model, s, prior)),
    ]


def _example_pairs(model: LoadedModel, s: GenerationSettings, prior, count: int = 6) -> str:
    """The first pairs, rendered again on the driver (same seeds, same images as the workers)."""
    idx = list(range(min(count, s.pairs)))
    pairs = render_pairs(model.G, pair_latents(model.G, idx, s.seed, model.resolution), model.resolution, model.alpha)
    keep = StaticMasks(s.masks, prior, torch.device("cpu"), model.cfg.invert)(pairs)  # [B, r, r]
    scale = max(1, 96 // model.resolution)
    rows = []
    for p, k in zip(pairs, keep):
        shown = np.concatenate([p[0], p[1], np.repeat((k * 255).astype(np.uint8)[..., None], 3, -1)], axis=1)
        shown = shown.repeat(scale, 0).repeat(scale, 1)
        rows.append(f"<img class='pix' src='{report.png_data_uri(shown)}'>")
    return "<br>".join(rows)
