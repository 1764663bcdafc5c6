"""One typed configuration for every job: dataclasses, named presets, `--set key=value`.

Presets live in `configs/NAME.toml` as short diffs from the defaults below. The resolved
config is written as `config.json` next to every result and is what Ray workers receive
and Ray Tune varies.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import typing
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass
class ModelConfig:
    resolution: int = 256  # final output resolution R (power of two)
    z_dim: int = 512  # |z| = |z_st| + |z_dyn|
    z_dyn_dim: int = 3  # the authors' code: the last 3 coordinates of z are dynamic
    w_dim: int = 512
    mapping_layers: int = 8
    channel_base: int = 16384  # channels at r px = min(channel_max, channel_base / r)
    channel_max: int = 512
    separate_noise: bool = True  # False: StyleGAN's one noise input (the ablation baseline)
    pair_d: str = "paper"  # D_pair variant: "paper" (per-frame first block) | "early_fusion"
    mbstd_group: int = 4
    # Fidelity fixes of issue 17; a saved config without the field reads LEGACY_DEFAULTS' value,
    # so runs made before a fix load and train on as they were trained.
    he_gain: bool = True  # equalised lr with He's gain sqrt(2) where a LeakyReLU follows (StyleGAN v1)
    pair_fade: str = "continuous"  # paper D_pair's fade-in: "continuous" | "legacy" (jumps at alpha 0)
    # G's 3x3 convolutions and blur pad by "reflect"; "zeros" (StyleGAN v1, older runs) leaves a
    # coloured frame around every image of a briefly trained model (docs/RESULTS.md).
    g_padding: str = "reflect"


@dataclass
class TrainConfig:
    start_resolution: int = 8  # progressive growing starts here
    fade_kimg: float = 600.0  # fade-in (alpha 0 -> 1) length at the start of each phase
    phase_kimg: float = 1200.0  # images per resolution phase before doubling
    total_kimg: float = 25000.0  # stop after this many real images (thousands)
    # Global batch and learning rate per resolution; a key applies from its resolution up.
    batch: dict[str, int] = field(default_factory=lambda: {"8": 256, "16": 128, "32": 64, "64": 32})
    lr: dict[str, float] = field(default_factory=lambda: {"8": 0.001, "128": 0.0015, "256": 0.002, "512": 0.003})
    mapping_lr_mult: float = 0.01
    beta1: float = 0.0
    beta2: float = 0.99
    r1_gamma: float = 10.0
    ema_decay: float = 0.999  # per step
    mixing_prob: float = 0.9
    # Pairwise-discriminator probability p: goes p_pair_start -> p_pair_end over
    # p_pair_anneal_kimg images of each phase, linearly ("anneal", the paper), along a half
    # cosine ("cosine") or in one drop at the end ("step"); or stays p_pair_start ("constant").
    p_pair_mode: str = "anneal"  # one of P_PAIR_MODES (train/schedule.py: pair_probability)
    p_pair_start: float = 0.5
    p_pair_end: float = 0.1
    p_pair_anneal_kimg: float = 600.0
    p_pair_restart_per_phase: bool = True
    crop_prob: float = 0.5  # crop sampling: P(D_pair's fake pair = two crops of one real frame)
    # Every real input of D (photos, real pairs, crop pairs) is a random square window of this
    # fraction of the frame side, resized to r: one scale for all, so D_pair cannot tell crop
    # pairs from real pairs by their zoom. Both frames of a pair share one flip; a real pair
    # shares one window, a crop pair takes two. 0: the sampling of runs made before it
    # existed (whole frames, crop pairs of `crop_scale` of the side, crops not flipped).
    window: float = 0.75
    crop_scale: float = 0.5  # window = 0 only: crop side as a fraction of the frame side
    seed: int = 0
    checkpoint_kimg: float = 50.0
    sample_kimg: float = 50.0  # sample grid + short mp4 every this many kimg (0: off)
    log_every: int = 10  # steps between metric lines
    keep_checkpoints: int = 3
    amp: str = "none"  # "bf16": torch.autocast on CUDA
    channels_last: bool = False  # G and the Ds in NHWC memory format (faster convolutions on tensor cores)
    # torch.compile G's forward; a failed compile logs one line and trains on uncompiled. Pays at
    # a fixed resolution and alpha (each new value recompiles), as in `bench/gpu_check.py`.
    compile: bool = False
    max_steps: int = 0  # stop after this many steps in this run (0: no limit); for tests


@dataclass
class DataConfig:
    images: str = ""  # folder or URI of landscape photos
    videos: str = ""  # folder or URI of time-lapse mp4s
    load_resolution: int = 0  # decode size; 0: 2 x model.resolution (room for crop sampling)
    # "memory": decode all into RAM, exact resume; "stream": Ray Data from shards or raw folders
    # (deeplandscape/data/stream.py); "auto": stream when images/videos hold prepared shards.
    source: str = "auto"
    shuffle_rows: int = 256  # stream: rows each worker buffers for its local shuffle
    epoch_rows: int = 1024  # stream: small prepared sets are repeated within an epoch up to this


@dataclass
class ScaleConfig:
    workers: int = 1
    use_gpu: bool = False
    cpus_per_worker: int = 1  # 0: auto, the cluster's CPUs shared by the workers (deeplandscape/raykit.py)
    max_failures: int = 0  # worker-group restarts from the latest checkpoint after a lost worker/node; -1: no limit


# The value a saved config (config.json, a checkpoint) that lacks a field had before the field
# existed; fields not named here take today's default.
LEGACY_DEFAULTS: dict[str, Any] = {"model.he_gain": False, "model.pair_fade": "legacy", "model.g_padding": "zeros",
                                   "train.window": 0.0}
PAIR_FADES = ("continuous", "legacy")
P_PAIR_MODES = ("anneal", "cosine", "step", "constant")  # how p_pair goes from start to end (schedule.py)
INVERSION_METHODS = ("E", "EO", "EOI", "EOIF", "EOIFS", "MO", "I2S")  # paper Fig. 3


@dataclass
class InvertConfig:
    """Bringing a photo to life (paper 3.2): encoder E, optimisation O + L_init (I), fine-tuning
    F, segmentation S. Defaults are the paper's; `configs/inversion-authors.toml` holds the
    values of the authors' code (REFERENCE.md)."""

    method: str = "auto"  # one of INVERSION_METHODS; auto: EOIFS when a mask is known, else EOIF
    batch: int = 8  # photos inverted together on one device
    fit: str = "crop"  # non-square photos: "crop" (centre square) | "pad" (reflect-pad, crop back)
    # Step 1, encoder E: ResNet features (layer1, layer3, layer4, average-pooled) -> 2-layer MLP.
    encoder_backbone: str = "resnet152"  # a torchvision ResNet: resnet18/34/50/101/152
    encoder_pretrained: bool = True  # start from ImageNet weights in the weight cache
    encoder_hidden: int = 1024
    # "mlp": Linear, ReLU, Linear, plus the mean w (paper); "authors": Linear, LayerNorm,
    # LeakyReLU(0.2), Linear, no offset (their released encoders, import-authors)
    encoder_head: str = "mlp"
    encoder_kimg: float = 200.0  # images sampled from G on the fly (paper: 200k)
    encoder_batch: int = 32
    encoder_lr: float = 1e-4
    encoder_z_scale: float = 3.0  # authors' code; a no-op after M's PixelNorm, kept for fidelity
    encoder_mixing_prob: float = 0.9
    encoder_checkpoint_kimg: float = 10.0
    encoder_log_every: int = 20
    # Step 2, O (+ I): optimise W and all S from W' and S = 0.
    opt_steps: int = 500  # at most; a photo stops when its learning rate has been halved 10 times
    opt_lr: float = 0.1
    opt_patience: int = 20  # halve the learning rate after this many steps without improvement
    noise_lr_mult: float = 0.01  # S learns at opt_lr x this: keeps S near zero (paper: "reduced lr")
    init_weight: float = 0.01  # L_init: weight of mean (W - W')^2
    opt_l1: float = 1.0
    opt_perceptual: float = 0.0
    # Step 3, F: fine-tune a per-photo copy of G's synthesis weights, latents frozen.
    finetune_steps: int = 500
    finetune_lr: float = 1e-3
    finetune_l1: float = 1.0
    finetune_perceptual: float = 10.0  # paper: "10x larger weight" than the per-pixel term
    perceptual_net: str = "vgg"  # LPIPS backbone: "vgg" | "alex" (weights from the cache)
    # Segmentation S: a TorchScript model (optional) and the class ids that are dynamic.
    # Masks for photos without X.mask.png: "ade20k" (the authors' network, weight cache), "none",
    # a TorchScript file ([1, 3, H, W] -> logits [1, C, H, W]); "" = ade20k if its files are cached
    segmentation_model: str = ""
    dynamic_classes: str = "2,21,26,60,113,128"  # ADE20K (0-based): sky, water, sea, river, waterfall, lake
    sky_classes: str = "2"  # ADE20K sky: the horizon is the lowest sky pixel + margin
    horizon_margin: float = 0.04  # 10 px at 256 px (REFERENCE.md)
    # Lighting network A (paper 3.2): trained on the fly from M until its loss stops improving.
    # "ours": reads M's pre-activation, predicts a gated offset (docs/RESULTS.md); "authors": their
    # MLPApproximator (residual blocks with LayerNorm on [w, z_dyn, c], width w + z_dyn + 1)
    lighting_arch: str = "ours"
    lighting_blocks: int = 10  # residual MLP blocks (authors' code)
    lighting_width: int = 512  # hidden width
    lighting_batch: int = 256
    lighting_lr: float = 1e-3
    lighting_steps: int = 20000  # at most
    lighting_log_every: int = 100  # steps per loss window
    lighting_patience: int = 5  # windows without a 1% gain -> converged
    lighting_from_resolution: int = 64  # A changes the styles of this level and finer (authors: 64-256 px)


@dataclass
class SuperResConfig:
    """Super-resolution (paper 3.2 "Super Resolution", Fig. 5): an ESRGAN x4 RRDB network trained
    on (hi-res video frame, low-res output of inference steps 1-2 on the downsampled frame);
    at animation time sky and water come from the SR frames, static parts from a guided
    filter of the SR frames with the hi-res photo as guide. Defaults are ESRGAN's (Wang et al.
    2018) where the paper says nothing; `deeplandscape/superres/` has the details."""

    # Training pairs, a cached stage in RUN/superres/pairs (built once, reused by every run).
    frames_per_video: int = 16  # evenly spaced frames of each video; hi-res side = 4 x model resolution
    pair_method: str = "EO"  # the paper's "first two steps of inference": encoder E, then optimisation O
    # The network: ESRGAN's RRDBNet (64 features, 23 RRDBs, growth 32), x4.
    nf: int = 64
    nb: int = 23
    gc: int = 32
    init: str = ""  # optional RRDBNet state dict to start from (e.g. ESRGAN's RRDB_PSNR_x4.pth)
    # Training, ESRGAN's recipe: an L1 stage ("PSNR-oriented"), then perceptual + RaGAN + L1.
    batch: int = 16  # global, pairs per step
    hr_patch: int = 128  # hi-res crop side (low-res: hr_patch / 4); a multiple of 32 (D's 5 halvings)
    psnr_steps: int = 1_000_000  # stage 1, L1 only, lr halved every 20% of the stage (ESRGAN: 200k)
    psnr_lr: float = 2e-4
    gan_steps: int = 400_000  # stage 2; lr halved at 12.5, 25, 50, 75% (ESRGAN: 50k, 100k, 200k, 300k)
    gan_lr: float = 1e-4  # G and D
    pixel_weight: float = 1e-2  # stage 2: L1
    perceptual_weight: float = 1.0  # stage 2: L1 of VGG16 conv5_3 features (ESRGAN: VGG19 conv5_4)
    gan_weight: float = 5e-3  # stage 2: relativistic average GAN
    d_nf: int = 64  # D's first-layer channels (ESRGAN's VGG-style discriminator)
    amp: str = "none"  # "bf16": torch.autocast on CUDA
    checkpoint_steps: int = 5000
    log_every: int = 100
    # Animation (Fig. 5): SR frames, then the guided-filter blend with the hi-res photo.
    max_size: int = 1024  # output side at most this (the paper: "up to one megapixel")
    guided_radius: int = 32  # guided-filter window radius in pixels at 1024 px, scaled with the output size
    guided_eps: float = 1e-4  # regulariser, in squared [0, 1] intensity units
    guided_subsample: int = 4  # fast guided filter (He & Sun 2015) at 1024 px, scaled with the output
    frames_batch: int = 8  # frames per SR forward pass


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    scale: ScaleConfig = field(default_factory=ScaleConfig)
    invert: InvertConfig = field(default_factory=InvertConfig)
    superres: SuperResConfig = field(default_factory=SuperResConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        """A saved config (`config.json`, a checkpoint's). Fields it lacks take today's
        defaults, or the value they had before they existed (`LEGACY_DEFAULTS`); fields this
        version no longer has are dropped with a warning, so run directories written by older
        versions still load and behave as they were trained."""
        cfg = cls()
        flat = {**LEGACY_DEFAULTS, **_flatten(d)}
        unknown = sorted(k for k in flat if not _is_field(cfg, k))
        if unknown:
            warnings.warn(f"ignoring config fields this version does not have: {unknown}", stacklevel=2)
        apply_overrides(cfg, {k: v for k, v in flat.items() if k not in unknown})
        return cfg


def _is_field(cfg: "Config", key: str) -> bool:
    section_name, _, name = key.partition(".")
    section = getattr(cfg, section_name, None)
    return dataclasses.is_dataclass(section) and name in {f.name for f in dataclasses.fields(section)}


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not key.endswith((".batch", ".lr")):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _coerce(value: Any, typ: Any, key: str) -> Any:
    """Coerce a TOML/JSON value or a `--set` string to the field's declared type."""
    origin = typing.get_origin(typ)
    if origin is dict:
        if isinstance(value, str):
            value = json.loads(value)
        if not isinstance(value, dict):
            raise ValueError(f"config field {key!r} must be a table/dict, got {value!r}")
        _, vtyp = typing.get_args(typ)
        return {str(k): _coerce(v, vtyp, f"{key}.{k}") for k, v in value.items()}
    if typ is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ValueError(f"config field {key!r} must be true or false, got {value!r}")
    try:
        if typ is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        return typ(value)
    except (TypeError, ValueError):
        raise ValueError(f"config field {key!r} must be {typ.__name__}, got {value!r}") from None


def apply_overrides(cfg: Config, overrides: dict[str, Any]) -> Config:
    """Set dotted keys (`train.r1_gamma`) on `cfg` in place, with type checks."""
    for key, value in overrides.items():
        section_name, _, name = key.partition(".")
        section = getattr(cfg, section_name, None)
        if section is None or not dataclasses.is_dataclass(section) or not name:
            raise ValueError(f"unknown config key {key!r}: sections are {[f.name for f in dataclasses.fields(cfg)]}")
        hints = typing.get_type_hints(type(section))
        if name not in hints:
            raise ValueError(f"unknown config key {key!r}; {section_name} has {sorted(hints)}")
        setattr(section, name, _coerce(value, hints[name], key))
    return cfg


def parse_set(items: list[str]) -> dict[str, str]:
    """`["train.lr={...}", "model.resolution=64"]` -> dict; values stay strings until coerced."""
    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def preset_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.toml"))


def read_preset(preset: str) -> dict[str, Any]:
    """The dotted keys a preset sets (a name in configs/ or a .toml path)."""
    path = Path(preset) if preset.endswith(".toml") else CONFIG_DIR / f"{preset}.toml"
    if not path.is_file():
        raise FileNotFoundError(f"no config preset {preset!r} (looked for {path}); presets: {preset_names()}")
    with open(path, "rb") as f:
        return _flatten(tomllib.load(f))


def load_config(preset: str | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Defaults, then the preset (a name in configs/ or a .toml path), then overrides."""
    cfg = Config()
    if preset:
        apply_overrides(cfg, read_preset(preset))
    apply_overrides(cfg, overrides or {})
    validate(cfg)
    return cfg


def validate(cfg: Config) -> None:
    m, t = cfg.model, cfg.train
    if m.resolution < 8 or m.resolution & (m.resolution - 1):
        raise ValueError(f"model.resolution must be a power of two >= 8, got {m.resolution}")
    if not (8 <= t.start_resolution <= m.resolution) or t.start_resolution & (t.start_resolution - 1):
        raise ValueError(f"train.start_resolution must be a power of two in [8, {m.resolution}], got {t.start_resolution}")
    if m.g_padding not in ("reflect", "zeros"):
        raise ValueError(f"model.g_padding must be 'reflect' or 'zeros', got {m.g_padding!r}")
    if m.pair_fade not in PAIR_FADES:
        raise ValueError(f"model.pair_fade must be one of {', '.join(PAIR_FADES)}, got {m.pair_fade!r}")
    if t.p_pair_mode not in P_PAIR_MODES:
        raise ValueError(f"train.p_pair_mode must be one of {', '.join(P_PAIR_MODES)}, got {t.p_pair_mode!r}")
    for name in ("p_pair_start", "p_pair_end", "crop_prob", "mixing_prob"):
        if not 0.0 <= getattr(t, name) <= 1.0:
            raise ValueError(f"train.{name} must be in [0, 1], got {getattr(t, name)}")
    if not 0.0 < t.crop_scale <= 1.0:
        raise ValueError(f"train.crop_scale must be in (0, 1], got {t.crop_scale}")
    if not 0.0 <= t.window < 1.0:
        raise ValueError(f"train.window must be in (0, 1) (0: the sampling of older runs), got {t.window}")
    if t.amp not in ("none", "bf16"):
        raise ValueError(f"train.amp must be 'none' or 'bf16', got {t.amp!r}")
    if cfg.data.source not in ("auto", "memory", "stream"):
        raise ValueError(f"data.source must be 'auto', 'memory' or 'stream', got {cfg.data.source!r}")
    for name in ("batch", "lr"):
        table = getattr(t, name)
        if not table or min(int(k) for k in table) > t.start_resolution:
            raise ValueError(f"train.{name} needs an entry at or below {t.start_resolution} px, got {table}")
    validate_invert(cfg.invert)
    if cfg.scale.cpus_per_worker < 0:
        raise ValueError(f"scale.cpus_per_worker must be >= 0 (0: auto), got {cfg.scale.cpus_per_worker}")
    if cfg.scale.workers < 1:
        raise ValueError(f"scale.workers must be >= 1, got {cfg.scale.workers}")
    if cfg.scale.max_failures < -1:
        raise ValueError(f"scale.max_failures must be >= 0, or -1 for no limit, got {cfg.scale.max_failures}")


def validate_invert(iv: InvertConfig) -> None:
    if iv.method != "auto" and iv.method not in INVERSION_METHODS:
        raise ValueError(f"invert.method must be 'auto' or one of {INVERSION_METHODS}, got {iv.method!r}")
    if iv.fit not in ("crop", "pad"):
        raise ValueError(f"invert.fit must be 'crop' or 'pad', got {iv.fit!r}")
    if iv.perceptual_net not in ("vgg", "alex"):
        raise ValueError(f"invert.perceptual_net must be 'vgg' or 'alex', got {iv.perceptual_net!r}")
    if not iv.encoder_backbone.startswith("resnet"):
        raise ValueError(f"invert.encoder_backbone must be a torchvision ResNet, got {iv.encoder_backbone!r}")
    if iv.lighting_arch not in ("ours", "authors"):
        raise ValueError(f"invert.lighting_arch must be 'ours' or 'authors', got {iv.lighting_arch!r}")
    if iv.encoder_head not in ("mlp", "authors"):
        raise ValueError(f"invert.encoder_head must be 'mlp' or 'authors', got {iv.encoder_head!r}")
    for name in ("batch", "encoder_batch", "lighting_blocks", "lighting_width", "lighting_batch", "lighting_log_every"):
        if getattr(iv, name) < 1:
            raise ValueError(f"invert.{name} must be >= 1, got {getattr(iv, name)}")
    r = iv.lighting_from_resolution
    if r < 4 or r & (r - 1):
        raise ValueError(f"invert.lighting_from_resolution must be a power of two >= 4, got {r}")
    for name in ("dynamic_classes", "sky_classes"):
        try:
            class_ids(getattr(iv, name))
        except ValueError:
            raise ValueError(f"invert.{name} must be comma-separated class ids, got {getattr(iv, name)!r}") from None


def class_ids(text: str) -> list[int]:
    """"2, 21,26" -> [2, 21, 26]."""
    return [int(c) for c in text.replace(" ", "").split(",") if c]
