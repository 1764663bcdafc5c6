"""The authors' motion files (`manual_homographies/m01.csv` ... `selected_homographies/man5.csv`)
as our forward `Motion`s.

Each CSV holds four lines `dx dy`: the shifts of the left-top, right-top, left-horizon and
right-horizon anchors in normalised [-1, 1] coordinates, for one frame. From them they build H
with src = the anchors (horizon at the middle), dst = src + shifts, and make each frame by
SAMPLING frame 0 at H^k p (kornia's HomographyWarper): content moves by H^-1. Our `Motion` is the
forward map, so the import takes the anchors through H^-1: d = H^-1(anchor) - anchor. A round
trip (our sky homography of the imported motion) is exactly their H^-1.

Two differences remain, both small: their grid puts -1 and 1 on the centres of the edge pixels
(align_corners=True), ours on the outer edges (a factor (n - 1) / n, 0.4 % at 256 px); and their
water transform is the mirror of the sky's only for a horizon at the middle (their sampling
default, and the horizon these anchors assume).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deeplandscape.animate.homography import Motion, anchor_points, apply_homography, homography_from_points

HORIZON = 0.5  # the horizon their anchors (and their sampling) assume


def motion_from_shifts(name: str, shifts: np.ndarray) -> Motion:
    """Their sampling-side corner shifts [4, 2] -> our forward `Motion`."""
    anchors = anchor_points(HORIZON)
    H = homography_from_points(anchors, anchors + shifts)
    forward = apply_homography(np.linalg.inv(H), anchors) - anchors
    return Motion(name, tuple(map(tuple, forward)))  # type: ignore[arg-type]


def read_authors_motions(folder: str) -> dict[str, Motion]:
    """Every `*.csv` in `folder` (their layout), by file name without `.csv`, sorted."""
    files = sorted(Path(folder).glob("*.csv"))
    if not files:
        raise FileNotFoundError(f"{folder}: no *.csv motion files (the authors' homographies/<set>/ folders hold them)")
    motions = {}
    for f in files:
        try:
            shifts = np.loadtxt(f, dtype=np.float64, ndmin=2)
        except ValueError as e:
            raise ValueError(f"{f}: not four lines of 'dx dy' numbers ({e})") from None
        if shifts.shape != (4, 2) or not np.isfinite(shifts).all():
            raise ValueError(f"{f}: need four lines of 'dx dy' (left-top, right-top, left-horizon, right-horizon), "
                             f"got an array of shape {shifts.shape}")
        motions[f.stem] = motion_from_shifts(f.stem, shifts)
    return motions
