"""The authors' motion CSVs as our forward motions."""

from __future__ import annotations

import numpy as np
import pytest

from deeplandscape.animate.homography import anchor_points, homography_from_points, sky_homography
from deeplandscape.authors.homographies import read_authors_motions

M01 = "-4e-4 4e-3\n-1e-2 4e-3\n-2e-5 2e-5\n-2e-4 2e-5\n"  # their manual_homographies/m01.csv


def test_their_sampling_homography_becomes_our_forward_one(tmp_path):
    (tmp_path / "m01.csv").write_text(M01)
    (tmp_path / "m02.csv").write_text("0.01 0\n0.01 0\n0.0005 0\n0.0005 0\n")
    motions = read_authors_motions(str(tmp_path))
    assert list(motions) == ["m01", "m02"]
    for name, text in (("m01", M01), ("m02", (tmp_path / "m02.csv").read_text())):
        shifts = np.array([[float(v) for v in line.split()] for line in text.splitlines()])
        theirs = homography_from_points(anchor_points(0.5), anchor_points(0.5) + shifts)  # output -> input
        ours = sky_homography(motions[name], 0.5)  # content of frame i -> frame i + 1
        product = ours @ theirs
        np.testing.assert_allclose(product / product[2, 2], np.eye(3), atol=1e-12)
    # Their positive shift samples further right: the content moves left.
    assert all(dx < 0 for dx, _ in motions["m02"].displacements)


def test_a_bad_csv_is_named(tmp_path):
    (tmp_path / "bad.csv").write_text("1 2 3\n")
    with pytest.raises(ValueError, match=r"bad.csv: need four lines of 'dx dy'"):
        read_authors_motions(str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no \\*.csv motion files"):
        read_authors_motions(str(tmp_path / "nothing-here"))
