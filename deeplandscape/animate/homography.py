"""Homographies that move S_dyn in a sampled video (paper 3.1 "Sampling videos", section 4).

Coordinates are normalised image coordinates in [-1, 1], x to the right and y DOWN, as in
`torch.nn.functional.grid_sample(..., align_corners=False)`: (-1, -1) is the outer corner of
the top-left pixel, (1, 1) that of the bottom-right one.

A motion is the per-frame displacement (dx, dy) of four anchor points, in this order:

    left-top (-1, -1), right-top (1, -1), left-horizon (-1, yh), right-horizon (1, yh)

with yh = 2 * horizon - 1 and `horizon` the horizon's height as a fraction of the image
from the top (0.5: the middle). The displacements are FORWARD: H maps where content is in
frame i to where it is in frame i + 1, so a positive dx moves clouds to the right. (The
authors' CSV files store the inverse, sampling-side offsets: their "3h" has a negative dx.)

The "sky" homography H moves the image above the horizon. Below it, water mirrors the sky,
so it moves with R H R, R the reflection y -> 2 yh - y about the horizon line: the vertical
component of the motion is flipped, the horizontal one kept. The paper composes one
transform frame by frame: frame i (from 0) is H^i applied to S_dyn of frame 0, computed here
as an exact matrix power so that long videos do not accumulate interpolation error.

User motions are data, a small JSON file mapping a name to four [dx, dy] pairs in the
anchor order above, normalised units per frame at speed x1:

    {
      "drift-right": [[0.01, 0.0], [0.01, 0.0], [0.0005, 0.0], [0.0005, 0.0]],
      "rise":        [[-0.007, -0.007], [0.007, -0.007], [-0.0004, 0.0], [0.0004, 0.0]]
    }

Keep the horizon points' dy at 0 so the horizon line maps onto itself and the sky and
water halves stay glued together.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

__all__ = [
    "Motion",
    "CLOCK_DIRECTIONS",
    "SPEEDS",
    "TOP_SPEED",
    "HORIZON_PARALLAX",
    "anchor_points",
    "apply_homography",
    "homography_from_points",
    "sky_homography",
    "reflection_homography",
    "matrix_power",
    "frame_homographies",
    "angle_motion",
    "clock_motion",
    "direction_motion",
    "PixelSpeed",
    "parse_speed",
    "speed_factor",
    "load_motions",
    "save_motions",
    "resolve_direction",
]

PathLike = str | os.PathLike[str]
Displacements = tuple[tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float]]

ANCHOR_NAMES = ("left-top", "right-top", "left-horizon", "right-horizon")

# Shift of the top corners per frame at speed x1, normalised units (REFERENCE: 0.004-0.02).
TOP_SPEED = 0.01
# Far clouds near the horizon move slower than the near ones overhead (parallax): the
# horizon points move this many times less than the top corners (REFERENCE: 10-50x).
HORIZON_PARALLAX = 20.0

# Speed presets; x2.5 matches the speed of real time-lapses (REFERENCE, "Sampling videos").
SPEEDS: dict[str, float] = {"x0.5": 0.5, "x1": 1.0, "x2.5": 2.5, "x4": 4.0}


@dataclass(frozen=True)
class Motion:
    """One frame's motion: (dx, dy) of the four anchor points, normalised units per frame.

    Order: left-top, right-top, left-horizon, right-horizon (see the module docstring).
    """

    name: str
    displacements: Displacements

    def __post_init__(self) -> None:
        d = np.asarray(self.displacements, dtype=np.float64)
        if d.shape != (4, 2) or not np.all(np.isfinite(d)):
            raise ValueError(f"motion {self.name!r}: need 4 finite (dx, dy) pairs "
                             f"({', '.join(ANCHOR_NAMES)}), got {self.displacements!r}")
        # Store plain float tuples so equal motions compare (and hash) equal.
        object.__setattr__(self, "displacements", tuple((float(x), float(y)) for x, y in d))

    def array(self) -> np.ndarray:
        """The displacements as float64 [4, 2]."""
        return np.asarray(self.displacements, dtype=np.float64)

    def scaled(self, speed: float) -> Motion:
        """The same direction, `speed` times faster per frame."""
        return Motion(self.name, tuple(map(tuple, self.array() * speed)))  # type: ignore[arg-type]


def _check_horizon(horizon: float) -> float:
    # At horizon 0 the horizon anchors coincide with the top corners: no homography.
    if not 0.0 < horizon <= 1.0:
        raise ValueError(f"horizon must be in (0, 1] (fraction of the image height from the top), got {horizon}")
    return 2.0 * horizon - 1.0


def anchor_points(horizon: float = 0.5) -> np.ndarray:
    """The four anchors [4, 2] (x, y): left-top, right-top, left-horizon, right-horizon."""
    yh = _check_horizon(horizon)
    return np.array([[-1.0, -1.0], [1.0, -1.0], [-1.0, yh], [1.0, yh]], dtype=np.float64)


def _normalise(H: np.ndarray) -> np.ndarray:
    """Scale a homography [..., 3, 3] so that H[2, 2] = 1 (it is only defined up to scale)."""
    return H / H[..., 2:3, 2:3]


def apply_homography(H: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map points [..., 2] (x, y) through H [3, 3] (with the perspective divide)."""
    p = np.asarray(points, dtype=np.float64)
    q = p @ H[:2, :2].T + H[:2, 2]  # [..., 2]
    w = p @ H[2, :2] + H[2, 2]  # [...]
    return q / w[..., None]


def homography_from_points(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The homography [3, 3] float64 (H[2, 2] = 1) mapping 4 points src [4, 2] onto dst [4, 2].

    The 8x8 direct linear transform solved in float64: cv2.getPerspectiveTransform gives the
    same matrix but takes float32 points, and rounding 0.0005-unit horizon shifts to float32
    would bias a homography that is raised to the power of the frame index.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    if src.shape != (4, 2) or dst.shape != (4, 2):
        raise ValueError(f"need 4 source and 4 destination points [4, 2], got {src.shape} and {dst.shape}")
    A = np.zeros((8, 8), dtype=np.float64)
    b = np.zeros(8, dtype=np.float64)
    for k, ((x, y), (u, v)) in enumerate(zip(src, dst)):
        # u = (h0 x + h1 y + h2) / (h6 x + h7 y + 1), v likewise with h3..h5.
        A[2 * k] = [x, y, 1, 0, 0, 0, -u * x, -u * y]
        A[2 * k + 1] = [0, 0, 0, x, y, 1, -v * x, -v * y]
        b[2 * k], b[2 * k + 1] = u, v
    try:
        h = np.linalg.solve(A, b)
    except np.linalg.LinAlgError as e:
        raise ValueError(f"degenerate points (three of them collinear?): src={src.tolist()}, dst={dst.tolist()}") from e
    return np.append(h, 1.0).reshape(3, 3)


def sky_homography(motion: Motion, horizon: float = 0.5) -> np.ndarray:
    """H [3, 3] moving the region above the horizon by one frame of `motion`."""
    src = anchor_points(horizon)
    return homography_from_points(src, src + motion.array())


def _reflection(horizon: float) -> np.ndarray:
    """R [3, 3]: y -> 2 yh - y, the mirror about the horizon line (R = R^-1)."""
    yh = _check_horizon(horizon)
    return np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 2.0 * yh], [0.0, 0.0, 1.0]])


def reflection_homography(H: np.ndarray, horizon: float = 0.5) -> np.ndarray:
    """R H R [..., 3, 3]: the sky's motion seen in the water (vertical component flipped).

    A point q below the horizon is mirrored into the sky (R q), moved like the sky (H) and
    mirrored back (R), so reflections follow the clouds they reflect (paper 3.1).
    """
    R = _reflection(horizon)
    return _normalise(R @ np.asarray(H, dtype=np.float64) @ R)


def matrix_power(H: np.ndarray, n: int) -> np.ndarray:
    """H^n [3, 3], normalised; n < 0 is the inverse's power, n = 0 the identity."""
    return _normalise(np.linalg.matrix_power(_normalise(np.asarray(H, dtype=np.float64)), int(n)))


def frame_homographies(
    motion: Motion,
    horizon: float,
    frames: int | Sequence[int],  # a frame count T (frames 0..T-1) or the frame indices
    speed: float = 1.0,  # multiplies the displacements (see SPEEDS)
) -> tuple[np.ndarray, np.ndarray]:
    """(sky [T, 3, 3], water [T, 3, 3]) float64: frame i is H^i, frame 0 the identity.

    H is built from the displacements times `speed`; each frame's power is computed
    directly, so a video can be rendered chunk by chunk with the same matrices.
    """
    idx = range(frames) if isinstance(frames, int) else frames
    H = sky_homography(motion.scaled(speed), horizon)
    sky = np.stack([matrix_power(H, i) for i in idx]) if len(idx) else np.zeros((0, 3, 3))  # [T, 3, 3]
    return sky, reflection_homography(sky, horizon)


def angle_motion(degrees: float, top_speed: float = TOP_SPEED, parallax: float = HORIZON_PARALLAX,
                 name: str | None = None) -> Motion:
    """The direction at an angle in degrees, counter-clockwise from "right" (0: right, 90: up
    and towards the viewer, 180: left, 270: down towards the horizon), as the clock directions
    are made (`clock_motion`): the angle's cosine is a translation, its sine a radial motion.
    The radial unit step is (-/+1, -1)/sqrt(2) so that a top corner moves by `top_speed` in both
    pure motions (0/180: sideways, 90/270: radial); between them one top corner moves faster
    than the other, as in the clock directions between 3h and 12h. The horizon points move `parallax` times less and keep dy = 0, so the horizon
    line stays put. Named "<degrees>deg" (0 <= degrees < 360) unless `name` is given.
    """
    angle = math.radians(degrees)
    c, r = math.cos(angle), math.sin(angle) / math.sqrt(2)
    c, r = round(c, 12), round(r, 12)  # exact zeros at 0, 90, 180 and 270 degrees
    top = ((top_speed * (c - r), -top_speed * r), (top_speed * (c + r), -top_speed * r))
    s = top_speed / parallax
    low = ((s * (c - r), 0.0), (s * (c + r), 0.0))
    return Motion(name or f"{degrees % 360:g}deg", (*top, *low))


def clock_motion(hour: int, top_speed: float = TOP_SPEED, parallax: float = HORIZON_PARALLAX) -> Motion:
    """The hand-made direction for a clock position (paper section 4: 12 homographies): the
    angle (3 - hour) x 30 degrees, so "3h" is straight right, "9h" left, "12h" the top corners
    go up and outwards (clouds rise and grow as they come towards the viewer), "6h" down and
    inwards, towards the horizon (`angle_motion`).
    """
    if not 1 <= hour <= 12:
        raise ValueError(f"clock hour must be 1..12, got {hour}")
    return angle_motion((3 - hour) * 30, top_speed, parallax, name=f"{hour}h")


CLOCK_DIRECTIONS: dict[str, Motion] = {f"{h}h": clock_motion(h) for h in range(1, 13)}


def load_motions(path: PathLike) -> dict[str, Motion]:
    """User motions from a JSON file (format: module docstring), keyed by name."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object {{name: [[dx, dy] x 4]}}, got {type(data).__name__}")
    motions = {}
    for name, value in data.items():
        ok = (isinstance(value, list) and len(value) == 4
              and all(isinstance(p, list) and len(p) == 2 for p in value)
              and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                      for p in value for v in p))
        if not ok:
            raise ValueError(f"{path}: entry {name!r} must be 4 [dx, dy] number pairs "
                             f"({', '.join(ANCHOR_NAMES)}), got {value!r}")
        motions[name] = Motion(name, tuple(tuple(p) for p in value))  # type: ignore[arg-type]
    return motions


def save_motions(path: PathLike, motions: Mapping[str, Motion]) -> None:
    """Write motions as JSON {name: [[dx, dy] x 4]}, readable by `load_motions`."""
    data = {name: [list(p) for p in m.displacements] for name, m in motions.items()}
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def direction_motion(name: str, extra: Mapping[str, Motion] | None = None, also: str = "") -> Motion:
    """The motion a direction names: a user motion in `extra`, a clock direction "1h".."12h",
    or an angle "45deg" (counter-clockwise from right, `angle_motion`). `also`: other accepted
    values, for the error message."""
    if extra and name in extra:
        return extra[name]
    if name in CLOCK_DIRECTIONS:
        return CLOCK_DIRECTIONS[name]
    m = re.fullmatch(r"\s*([-+]?\d+(?:\.\d+)?)\s*(?:deg|°)\s*", name)
    if m:
        return angle_motion(float(m.group(1)))
    table = ", ".join([*(extra or {}), *CLOCK_DIRECTIONS])
    raise ValueError(f"unknown direction {name!r}: use {also + ', ' if also else ''}a clock direction ({table}) "
                     "or an angle in degrees, e.g. 45deg (0deg: right, 90deg: up)")


def resolve_direction(
    name_or_random: str,  # "1h" ... "12h", "45deg", a name in `extra`, or "random"
    rng: np.random.Generator,  # used only for "random"
    extra: Mapping[str, Motion] | None = None,  # user motions (load_motions); they shadow built-ins
) -> Motion:
    """The motion for a name; "random" draws one of the 12 clock directions (paper section 4)."""
    if name_or_random == "random":
        names = list(CLOCK_DIRECTIONS)
        return CLOCK_DIRECTIONS[names[int(rng.integers(len(names)))]]
    return direction_motion(name_or_random, extra, also="random (one clock direction per video)")


@dataclass(frozen=True)
class PixelSpeed:
    """A speed in pixels per second at the output size: how fast the top corners of the sky
    move in the video as played in the pure directions (3h, 9h sideways; 12h, 6h radial); other
    directions take the same factor of their displacements (`speed_factor`)."""

    px_per_s: float

    def __str__(self) -> str:
        return f"{self.px_per_s:g}px/s"


def parse_speed(value: str) -> float | PixelSpeed:
    """A speed as written on the command line or in a manifest: a factor of the motions
    ("2.5", "x2.5", a preset of SPEEDS) or pixels per second at the output size ("12px/s")."""
    text = str(value).strip()
    if text in SPEEDS:
        return SPEEDS[text]
    m = re.fullmatch(r"([0-9]*\.?[0-9]+)\s*px/s", text)
    number = m.group(1) if m else text[1:] if text.startswith("x") else text
    try:
        v = float(number)
    except ValueError:
        raise ValueError(f"speed {value!r}: expected a factor (2.5, x2.5; presets {', '.join(SPEEDS)}) or pixels "
                         "per second at the output size (12px/s)") from None
    if not (math.isfinite(v) and v >= 0):
        raise ValueError(f"speed {value!r}: must be a finite number >= 0")
    return PixelSpeed(v) if m else v


def speed_factor(speed: float | PixelSpeed, output_px: int, fps: float) -> float:
    """The factor of the displacements that moves the top corners `speed` pixels per second in
    a video `output_px` pixels wide played at `fps`: a top corner moves TOP_SPEED x factor
    normalised units (2 = the width) per frame. A plain factor is returned as it is."""
    if not isinstance(speed, PixelSpeed):
        return float(speed)
    return speed.px_per_s / (TOP_SPEED * output_px / 2 * fps)
