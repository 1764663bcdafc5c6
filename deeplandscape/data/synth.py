"""Procedural landscape photos and time-lapses with known ground truth.

DeepLandscape trains on still landscape photos plus time-lapse videos. For
the demo and the tests we need a data set that is tiny, embedded, fully
deterministic and whose dynamics are *known*: every scene is a sky with
drifting clouds, one or two static mountain/hill silhouettes, optional water
that mirrors the sky, and ground. Over time only two things change:

* the clouds drift by exactly ``drift = (dx, dy)`` output pixels per frame
  (the cloud field is periodic, so any drift and any ``t`` are valid), and
  their mirror image in the water drifts by ``(dx, -dy)``;
* a global light gain (brightness + small colour tint) varies slowly.

Geometry never moves, and the dynamic mask (sky + water) does not depend on
``t``, so the data can test motion calibration and static/dynamic separation.

Everything is vectorised numpy; ``t`` is measured in frames.

On disk (see :func:`write_dataset`) every photo/video ``X.ext`` has its mask
next to it as ``X.mask.png`` (mode ``"L"``, 255 = dynamic); use
:func:`mask_path_for` / :func:`is_mask_file` instead of re-deriving names.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from deeplandscape.video import write_video

__all__ = [
    "MountainLayer",
    "SceneParams",
    "is_mask_file",
    "mask_path_for",
    "render_frame",
    "render_video",
    "sample_scene",
    "write_dataset",
]

RGB = tuple[float, float, float]
PathLike = str | os.PathLike[str]

MASK_SUFFIX = ".mask.png"

# Time-of-day palettes: (sky_top, sky_horizon, cloud, sun, ambient). The
# ambient colour pre-multiplies every surface colour so that mountains, ground
# and water match the sky's mood (dark and blue at night, warm at sunset).
_PALETTES: dict[str, tuple[RGB, RGB, RGB, RGB, RGB]] = {
    "day": ((0.20, 0.42, 0.80), (0.66, 0.80, 0.95), (0.97, 0.97, 0.98), (1.00, 1.00, 0.90), (1.00, 1.00, 1.00)),
    "sunset": ((0.24, 0.24, 0.50), (0.98, 0.55, 0.25), (0.96, 0.62, 0.48), (1.00, 0.78, 0.42), (0.80, 0.58, 0.48)),
    "night": ((0.02, 0.03, 0.10), (0.10, 0.14, 0.28), (0.32, 0.34, 0.42), (0.85, 0.88, 0.95), (0.24, 0.27, 0.40)),
}
_TIME_OF_DAY_P = {"day": 0.5, "sunset": 0.3, "night": 0.2}

# Label values used internally for the per-pixel region map.
_SKY, _WATER, _GROUND = 0, 1, 2  # mountain layer i is labelled 3 + i

# Spread of the cloud fbm around 0.5, used to turn it into ~unit-variance noise
# so that ``cloud_cover`` means roughly the same for any octave count.
_FBM_STD = 0.12


@dataclass(frozen=True)
class MountainLayer:
    """One static silhouette standing on the horizon.

    Heights are fractions of the image height above the horizon line; the
    ridge is ``base + amplitude * profile(x)`` with ``profile`` in [-1, 1].
    ``kind == "mountains"`` uses ridged (cusped) sine octaves for sharp peaks,
    ``"hills"`` uses smooth sines.
    """

    kind: str
    base: float
    amplitude: float
    frequency: float  # cycles of the lowest octave across the image width
    octaves: int
    roughness: float  # amplitude ratio between successive octaves
    color: RGB  # already multiplied by the time-of-day ambient light
    haze: float  # mix towards the horizon sky colour (aerial perspective)
    seed: int  # phases of the profile and the surface texture


@dataclass(frozen=True)
class SceneParams:
    """Everything that defines one synthetic scene (JSON-serialisable).

    Colours are linear-ish RGB floats in [0, 1]. Lengths are fractions of the
    image size except ``drift``, which is in output pixels per frame at
    whatever ``size`` the scene is rendered: the known ground-truth motion.
    """

    seed: int
    time_of_day: str  # "day" | "sunset" | "night"
    horizon: float  # horizon row as a fraction of the height, from the top
    sky_top: RGB
    sky_horizon: RGB
    sun_color: RGB
    sun_x: float
    sun_y: float
    sun_radius: float
    sun_strength: float
    stars: float  # star brightness (0 except at night)
    cloud_color: RGB
    cloud_cells: int  # lattice cells across the width for the lowest octave
    cloud_stretch: float  # clouds are this many times wider than tall
    cloud_octaves: int
    cloud_cover: float  # ~fraction of sky covered, in [0, 1]
    cloud_softness: float  # edge softness in noise standard deviations
    cloud_opacity: float
    drift: tuple[float, float]  # (dx, dy) cloud motion, output px per frame
    layers: tuple[MountainLayer, ...]  # far to near
    ground_color: RGB
    ground_texture: float
    has_water: bool
    water_extent: float  # fraction of the below-horizon height covered by water
    water_color: RGB
    water_reflectivity: float  # 1 = perfect mirror, 0 = flat water colour
    water_ripple: float  # static horizontal wobble of the reflection, fraction of size
    light_amp: float  # relative brightness swing of the global light
    light_rate: float  # light cycles per frame
    light_phase: float
    light_tint: RGB  # per-channel extra swing (colour shift of the light)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists when dumped)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SceneParams":
        """Inverse of :meth:`to_dict`, accepting lists where tuples are expected."""
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            value = data[f.name]
            if f.name == "layers":
                value = tuple(
                    MountainLayer(**{k: tuple(v) if isinstance(v, list) else v for k, v in layer.items()})
                    for layer in value
                )
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
        return cls(**kwargs)


# ---------------------------------------------------------------------------
# sampling


def _jitter(rng: np.random.Generator, color: RGB, amount: float = 0.05) -> RGB:
    c = np.clip(np.asarray(color) + rng.uniform(-amount, amount, 3), 0.0, 1.0)
    return (float(c[0]), float(c[1]), float(c[2]))


def _times(a: RGB, b: RGB) -> RGB:
    return (a[0] * b[0], a[1] * b[1], a[2] * b[2])


def _sample_layer(rng: np.random.Generator, near: bool, ambient: RGB, horizon: float) -> MountainLayer:
    """A far layer is tall, bluish and hazy; a near one is low and darker."""
    kind = "hills" if (near and rng.random() < 0.6) or rng.random() < 0.25 else "mountains"
    room = horizon - 0.14  # keep the top rows sky: the ridge never gets closer than 0.14 H to the top
    if near:
        base, amplitude = rng.uniform(0.04, 0.10), rng.uniform(0.02, 0.05)
    else:
        base, amplitude = rng.uniform(0.12, 0.26), rng.uniform(0.04, 0.10)
    base = min(base, room - amplitude)
    if kind == "mountains":
        color = _jitter(rng, (0.36, 0.38, 0.43) if not near else (0.30, 0.28, 0.26), 0.06)
        frequency, octaves, roughness = rng.uniform(1.2, 3.5), 4, rng.uniform(0.4, 0.55)
    else:
        color = _jitter(rng, (0.24, 0.42, 0.20) if near else (0.28, 0.40, 0.32), 0.06)
        frequency, octaves, roughness = rng.uniform(0.6, 1.8), 2, rng.uniform(0.3, 0.45)
    return MountainLayer(
        kind=kind,
        base=float(base),
        amplitude=float(amplitude),
        frequency=float(frequency),
        octaves=int(octaves),
        roughness=float(roughness),
        color=_times(color, ambient),
        haze=float(rng.uniform(0.05, 0.2) if near else rng.uniform(0.25, 0.5)),
        seed=int(rng.integers(0, 2**31 - 1)),
    )


def sample_scene(rng: np.random.Generator) -> SceneParams:
    """Draw one random scene; all randomness comes from ``rng``."""
    names = list(_TIME_OF_DAY_P)
    tod = names[int(rng.choice(len(names), p=list(_TIME_OF_DAY_P.values())))]
    sky_top, sky_horizon, cloud, sun, ambient = _PALETTES[tod]
    horizon = float(rng.uniform(0.42, 0.68))
    n_layers = 1 + int(rng.random() < 0.65)
    layers = tuple(_sample_layer(rng, near=(i == 1 or n_layers == 1 and rng.random() < 0.3), ambient=ambient,
                                 horizon=horizon) for i in range(n_layers))
    speed = rng.uniform(0.3, 1.2)
    angle = rng.uniform(-0.35, 0.35) + (math.pi if rng.random() < 0.5 else 0.0)
    ground = _jitter(rng, [(0.26, 0.40, 0.18), (0.40, 0.34, 0.22), (0.22, 0.30, 0.16)][int(rng.integers(3))], 0.05)
    return SceneParams(
        seed=int(rng.integers(0, 2**31 - 1)),
        time_of_day=tod,
        horizon=horizon,
        sky_top=_jitter(rng, sky_top),
        sky_horizon=_jitter(rng, sky_horizon),
        sun_color=sun,
        sun_x=float(rng.uniform(0.1, 0.9)),
        sun_y=float(rng.uniform(0.55, 0.95)),  # as a fraction of the horizon height
        sun_radius=float(rng.uniform(0.12, 0.3) if tod != "night" else rng.uniform(0.03, 0.06)),
        sun_strength=float(rng.uniform(0.2, 0.5) if tod != "night" else rng.uniform(0.5, 0.8)),
        stars=float(rng.uniform(0.4, 0.8) if tod == "night" else 0.0),
        cloud_color=_jitter(rng, cloud, 0.03),
        cloud_cells=int(rng.integers(2, 5)),
        cloud_stretch=float(rng.uniform(1.5, 3.0)),
        cloud_octaves=int(rng.integers(3, 6)),
        cloud_cover=float(rng.uniform(0.3, 0.7)),
        cloud_softness=float(rng.uniform(0.5, 1.2)),
        cloud_opacity=float(rng.uniform(0.7, 0.95)),
        drift=(float(speed * math.cos(angle)), float(speed * math.sin(angle))),
        layers=layers,
        ground_color=_times(ground, ambient),
        ground_texture=float(rng.uniform(0.1, 0.3)),
        has_water=bool(rng.random() < 0.5),
        water_extent=float(rng.uniform(0.3, 0.7)),
        water_color=_times(_jitter(rng, (0.08, 0.18, 0.26), 0.03), ambient),
        water_reflectivity=float(rng.uniform(0.55, 0.85)),
        water_ripple=float(rng.uniform(0.0, 0.008)),
        light_amp=float(rng.uniform(0.03, 0.12)),
        light_rate=float(rng.uniform(1 / 400, 1 / 100)),
        light_phase=float(rng.uniform(0.0, 2 * math.pi)),
        light_tint=(float(rng.uniform(-0.06, 0.06)), float(rng.uniform(-0.06, 0.06)), float(rng.uniform(-0.06, 0.06))),
    )


# ---------------------------------------------------------------------------
# noise


def _lattices(seed: int, key: int, cells_x: int, cells_y: int, octaves: int) -> list[np.ndarray]:
    """Random value lattices for each fbm octave; octave k has 2**k times the cells."""
    rng = np.random.default_rng([seed, key])
    return [rng.random((cells_y << k, cells_x << k)) for k in range(octaves)]


def _value_noise(u: np.ndarray, v: np.ndarray, lattice: np.ndarray) -> np.ndarray:
    """Smooth value noise in [0, 1], periodic with the lattice shape (u: x cells, v: y cells)."""
    ny, nx = lattice.shape
    fu, fv = np.floor(u), np.floor(v)
    tu, tv = u - fu, v - fv
    su, sv = tu * tu * (3 - 2 * tu), tv * tv * (3 - 2 * tv)
    i0, j0 = fu.astype(np.int64) % nx, fv.astype(np.int64) % ny
    i1, j1 = (i0 + 1) % nx, (j0 + 1) % ny
    a, b, c, d = lattice[j0, i0], lattice[j0, i1], lattice[j1, i0], lattice[j1, i1]
    return a + (b - a) * su + (c - a) * sv + (a - b - c + d) * su * sv


def _fbm(u: np.ndarray, v: np.ndarray, lattices: list[np.ndarray], persistence: float = 0.5) -> np.ndarray:
    """Fractal sum of value-noise octaves, normalised back to [0, 1]."""
    total = np.zeros(np.broadcast(u, v).shape)
    amp, norm = 1.0, 0.0
    for k, lattice in enumerate(lattices):
        total += amp * _value_noise(u * (1 << k), v * (1 << k), lattice)
        norm += amp
        amp *= persistence
    return total / norm


def _smoothstep(lo: float | np.ndarray, hi: float | np.ndarray, x: np.ndarray) -> np.ndarray:
    s = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return s * s * (3 - 2 * s)


def _ridge(layer: MountainLayer, x01: np.ndarray) -> np.ndarray:
    """Silhouette height above the horizon (fraction of image height) at x in [0, 1]."""
    phases = np.random.default_rng([layer.seed, 1]).uniform(0, 1, layer.octaves)
    profile = np.zeros_like(x01)
    amp, norm = 1.0, 0.0
    for k in range(layer.octaves):
        arg = math.pi * (layer.frequency * (2.03**k) * x01 + phases[k])
        wave = 1 - 2 * np.abs(np.sin(arg)) if layer.kind == "mountains" else np.sin(2 * arg)
        profile += amp * wave
        norm += amp
        amp *= layer.roughness
    return layer.base + layer.amplitude * profile / norm


# ---------------------------------------------------------------------------
# rendering


@dataclass
class _Static:
    """Everything about a scene at one size that does not depend on ``t``."""

    size: int
    mask: np.ndarray  # [S, S] bool, sky + water
    base: np.ndarray  # [S, S, 3] unlit colour of static pixels (mountains, ground)
    sky_idx: tuple[np.ndarray, np.ndarray]  # pixels showing sky directly
    refl_sky_idx: tuple[np.ndarray, np.ndarray]  # water pixels reflecting sky
    sky_x: np.ndarray  # [N] sample x (pixels) for sky samples: direct then reflected
    sky_y: np.ndarray  # [N] sample y (pixels), may be < 0 for reflections
    sky_base: np.ndarray  # [N, 3] gradient + sun + stars at the sample points
    cloud_fade: np.ndarray  # [N] clouds thin out towards the horizon
    lattices: list[np.ndarray] = field(default_factory=list)


def _sky_gradient(p: SceneParams, x: np.ndarray, y: np.ndarray, size: int) -> np.ndarray:
    """Cloud-free sky colour at pixel coordinates (y may lie above the image)."""
    h = p.horizon * size
    g = np.clip(y / h, 0.0, 1.0)[..., None] ** 1.5  # [N, 1]
    col = (1 - g) * np.asarray(p.sky_top) + g * np.asarray(p.sky_horizon)
    dx, dy = (x - p.sun_x * size) / size, (y - p.sun_y * h) / size
    glow = np.exp(-(dx * dx + dy * dy) / (p.sun_radius**2))[..., None]
    col = col + p.sun_strength * glow * np.asarray(p.sun_color)
    if p.stars > 0:
        # Fixed star field on the integer pixel grid of the sky-sample coordinates.
        hx = np.floor(x).astype(np.int64) * 73856093 ^ np.floor(y).astype(np.int64) * 19349663 ^ p.seed
        star = ((hx % 997) < 6).astype(float) * p.stars
        col = col + star[..., None]
    return col


def _layer_colour(p: SceneParams, layer: MountainLayer, x: np.ndarray, y: np.ndarray, ridge_y: np.ndarray,
                  size: int, lattices: list[np.ndarray]) -> np.ndarray:
    """Mountain surface: lit near the ridge, darker towards the base, textured and hazy."""
    h = p.horizon * size
    depth = np.clip((y - ridge_y) / np.maximum(h - ridge_y, 1.0), 0.0, 1.0)[..., None]
    tex = _fbm(x / size * 6, y / size * 6, lattices)[..., None] - 0.5
    col = np.asarray(layer.color) * (1.15 - 0.35 * depth) * (1 + 0.5 * tex)
    return (1 - layer.haze) * col + layer.haze * np.asarray(p.sky_horizon) * 0.8


def _above_horizon(p: SceneParams, x: np.ndarray, y: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Label and unlit static colour of the above-horizon scene at (x, y).

    Evaluated on arbitrary coordinates so the water can show an exact mirror
    of the sky and mountains. Returns (label [...], colour [..., 3]); colour
    is only meaningful where the label is a mountain layer.
    """
    label = np.full(x.shape, _SKY, dtype=np.int64)
    colour = np.zeros(x.shape + (3,))
    h = p.horizon * size
    for i, layer in enumerate(p.layers):
        ridge_y = h - _ridge(layer, x / size) * size
        hit = y >= ridge_y
        if hit.any():
            lat = _lattices(layer.seed, 2, 2, 2, 4)
            label[hit] = 3 + i
            colour[hit] = _layer_colour(p, layer, x[hit], y[hit], ridge_y[hit], size, lat)
    return label, colour


def _build_static(p: SceneParams, size: int) -> _Static:
    """Lay out the regions and precompute all time-independent colours."""
    if size <= 0 or size % 2:
        raise ValueError(f"size must be a positive even number (H.264/yuv420p needs even sizes), got {size}")
    coords = np.arange(size, dtype=np.float64) + 0.5
    y, x = np.meshgrid(coords, coords, indexing="ij")  # [S, S] pixel centres
    h = p.horizon * size
    label, base = _above_horizon(p, x, y, size)
    below = y >= h
    label[below] = _GROUND

    gl = _lattices(p.seed, 3, 4, 4, 4)
    tex = _fbm(x / size * 4, y / size * 4, gl)[..., None] - 0.5  # [S, S, 1]
    fade = np.clip((y - h) / max(size - h, 1.0), 0.0, 1.0)[..., None]
    ground = np.asarray(p.ground_color) * (1.1 - 0.3 * fade) * (1 + 2 * p.ground_texture * tex)
    base[below] = ground[below]

    refl_sky_idx: tuple[np.ndarray, np.ndarray] = (np.zeros(0, np.int64), np.zeros(0, np.int64))
    rx = ry = np.zeros(0)
    if p.has_water:
        shore_phase = np.random.default_rng([p.seed, 4]).uniform(0, 2 * math.pi)
        shore = (p.horizon + p.water_extent * (1 - p.horizon)) * size
        shore = shore + 0.02 * size * np.sin(2 * math.pi * 1.5 * x / size + shore_phase)
        water = below & (y < shore)
        ripple = p.water_ripple * size * np.sin(2 * math.pi * (y - h) / max(0.03 * size, 1.5))
        wx, wy = x[water] + ripple[water], 2 * h - y[water]  # mirror about the horizon line
        wlabel, wcol = _above_horizon(p, wx, wy, size)
        shade = p.water_reflectivity * 0.85  # reflections are darker than the source
        wcol = shade * wcol + (1 - p.water_reflectivity) * np.asarray(p.water_color)
        rows, cols = np.nonzero(water)
        label[water] = _WATER
        base[water] = wcol  # mountain reflections are static; sky ones are overwritten per frame
        sky_hit = wlabel == _SKY
        refl_sky_idx = (rows[sky_hit], cols[sky_hit])
        rx, ry = wx[sky_hit], wy[sky_hit]

    sky = label == _SKY
    sky_idx = np.nonzero(sky)
    sky_x = np.concatenate([x[sky], rx])
    sky_y = np.concatenate([y[sky], ry])
    sky_base = _sky_gradient(p, sky_x, sky_y, size)
    cloud_fade = 0.35 + 0.65 * _smoothstep(0.0, 0.5, (h - sky_y) / h)
    cells_y = max(1, round(p.cloud_cells * p.cloud_stretch))
    return _Static(
        size=size,
        mask=(label == _SKY) | (label == _WATER),
        base=base,
        sky_idx=sky_idx,
        refl_sky_idx=refl_sky_idx,
        sky_x=sky_x,
        sky_y=sky_y,
        sky_base=sky_base,
        cloud_fade=cloud_fade,
        lattices=_lattices(p.seed, 5, p.cloud_cells, cells_y, p.cloud_octaves),
    )


def _light(p: SceneParams, t: float) -> np.ndarray:
    """Global per-channel light gain at time t: slow brightness and tint swing."""
    s = math.sin(2 * math.pi * p.light_rate * t + p.light_phase)
    return (1 + p.light_amp * s) * (1 + s * np.asarray(p.light_tint))  # [3]


def _compose(p: SceneParams, st: _Static, t: float) -> np.ndarray:
    """Render one frame at time t from the precomputed static layout."""
    size = st.size
    n_direct = st.sky_idx[0].size
    # Clouds: periodic fbm sampled at coordinates shifted by drift * t.
    u = (st.sky_x - p.drift[0] * t) / size * p.cloud_cells
    v = (st.sky_y - p.drift[1] * t) / size * st.lattices[0].shape[0]
    z = (_fbm(u, v, st.lattices) - 0.5) / _FBM_STD
    thr = (0.5 - p.cloud_cover) * 2.5
    density = _smoothstep(thr - p.cloud_softness, thr + p.cloud_softness, z) * p.cloud_opacity * st.cloud_fade
    cloud = np.asarray(p.cloud_color) * (0.85 + 0.15 * np.clip(z - thr, -1, 1))[:, None]  # [N, 3]
    sky = st.sky_base * (1 - density[:, None]) + cloud * density[:, None]  # [N, 3]

    img = st.base.copy()  # [S, S, 3]
    img[st.sky_idx] = sky[:n_direct]
    if st.refl_sky_idx[0].size:
        shade = p.water_reflectivity * 0.85
        img[st.refl_sky_idx] = shade * sky[n_direct:] + (1 - p.water_reflectivity) * np.asarray(p.water_color)
    img = img * _light(p, t)
    return np.round(np.clip(img, 0.0, 1.0) * 255).astype(np.uint8)


def render_frame(params: SceneParams, t: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Render the scene at time ``t`` (frames): RGB uint8 [size, size, 3], dynamic mask [size, size] bool."""
    st = _build_static(params, size)
    return _compose(params, st, t), st.mask.copy()


def render_video(params: SceneParams, frames: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Render frames t = 0 .. frames-1: video [T, size, size, 3] uint8 and the (constant) mask.

    Identical to stacking :func:`render_frame` calls, but the static layout is
    computed once.
    """
    if frames <= 0:
        raise ValueError(f"frames must be positive, got {frames}")
    st = _build_static(params, size)
    video = np.empty((frames, size, size, 3), dtype=np.uint8)  # [T, S, S, 3]
    for i in range(frames):
        video[i] = _compose(params, st, float(i))
    return video, st.mask.copy()


# ---------------------------------------------------------------------------
# data set on disk


def mask_path_for(path: PathLike) -> Path:
    """Mask file of a photo/video: same folder, same stem, ``.mask.png`` suffix.

    ``photos/00000.png -> photos/00000.mask.png``, ``videos/00003.mp4 -> videos/00003.mask.png``.
    """
    p = Path(path)
    if is_mask_file(p):
        raise ValueError(f"{p} is already a mask file")
    return p.with_name(p.stem + MASK_SUFFIX)


def is_mask_file(path: PathLike) -> bool:
    """True for ``*.mask.png`` files, so loaders can skip masks when listing photos."""
    return Path(path).name.lower().endswith(MASK_SUFFIX)


def _save_mask(path: Path, mask: np.ndarray) -> None:
    Image.fromarray(mask.astype(np.uint8) * 255).save(path)


def write_dataset(
    out_dir: PathLike,
    images: int,
    videos: int,
    frames: int,
    size: int,
    seed: int,
    fps: float = 15.0,
) -> dict[str, Any]:
    """Write a synthetic data set and its manifest; deterministic for ``seed``.

    Layout::

        out_dir/photos/00000.png + 00000.mask.png   (independent scene, random t)
        out_dir/videos/00000.mp4 + 00000.mask.png   (H.264, t = 0 .. frames-1)
        out_dir/synth.json                          (arguments + every scene's params)

    Photo i and video i each get their own random stream derived from
    ``(seed, kind, i)``, so they do not depend on how many of the other kind
    are requested. Returns a summary with counts and paths.
    """
    if size <= 0 or size % 2:
        raise ValueError(f"size must be a positive even number (H.264/yuv420p needs even sizes), got {size}")
    if images < 0 or videos < 0:
        raise ValueError(f"images and videos must be >= 0, got images={images}, videos={videos}")
    if videos and frames <= 0:
        raise ValueError(f"frames must be positive when videos > 0, got {frames}")
    out = Path(out_dir)
    photo_dir, video_dir = out / "photos", out / "videos"
    photo_dir.mkdir(parents=True, exist_ok=True)
    video_dir.mkdir(parents=True, exist_ok=True)

    photo_entries: list[dict[str, Any]] = []
    for i in range(images):
        rng = np.random.default_rng([seed, 0, i])
        params = sample_scene(rng)
        t = float(rng.uniform(0.0, 1000.0))
        image, mask = render_frame(params, t, size)
        path = photo_dir / f"{i:05d}.png"
        Image.fromarray(image).save(path)
        _save_mask(mask_path_for(path), mask)
        photo_entries.append({"file": str(path.relative_to(out)), "mask": str(mask_path_for(path).relative_to(out)),
                              "t": t, "params": params.to_dict()})

    video_entries: list[dict[str, Any]] = []
    for i in range(videos):
        params = sample_scene(np.random.default_rng([seed, 1, i]))
        clip, mask = render_video(params, frames, size)  # [T, S, S, 3]
        path = video_dir / f"{i:05d}.mp4"
        write_video(path, clip, fps=fps, threads=1)  # deterministic for the seed, to the byte
        _save_mask(mask_path_for(path), mask)
        video_entries.append({"file": str(path.relative_to(out)), "mask": str(mask_path_for(path).relative_to(out)),
                              "frames": frames, "fps": fps, "params": params.to_dict()})

    manifest = {
        "version": 1,
        "args": {"images": images, "videos": videos, "frames": frames, "size": size, "seed": seed, "fps": fps},
        "photos": photo_entries,
        "videos": video_entries,
    }
    manifest_path = out / "synth.json"
    manifest_path.write_text(json.dumps(manifest, indent=1))
    return {
        "out_dir": str(out),
        "manifest": str(manifest_path),
        "num_photos": images,
        "num_videos": videos,
        "frames": frames,
        "size": size,
        "photos": [str(out / e["file"]) for e in photo_entries],
        "videos": [str(out / e["file"]) for e in video_entries],
    }
