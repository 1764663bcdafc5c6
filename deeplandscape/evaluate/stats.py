"""Feature statistics for FID/FVD as float64 sums that merge across workers.

A worker that sees a shard of the images keeps (sum x, sum x x^T, N) of their features;
shards merge by adding the three (REFERENCE "Evaluation protocol"), so the statistics of a
data set do not depend on how it was split. Mean and covariance follow pytorch-fid
(``np.mean`` and ``np.cov(rowvar=False)``, i.e. unbiased, N - 1), so a FID computed from
merged sums matches ``python -m pytorch_fid`` on the same features.

float64 matters: Inception pool3 features are non-negative with means comparable to their
spread, and sum x x^T - N mu mu^T over tens of thousands of images loses too many digits
in float32.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

import numpy as np

__all__ = ["FeatureStats", "frechet_distance"]

PathLike = str | os.PathLike[str]


@dataclass
class FeatureStats:
    """Running sums of D-dimensional features: sum [D], sum_outer [D, D], n."""

    sum: np.ndarray  # [D] float64, sum of features
    sum_outer: np.ndarray  # [D, D] float64, sum of outer products x x^T
    n: int = 0  # number of feature vectors added

    def __post_init__(self) -> None:
        self.sum = np.asarray(self.sum, dtype=np.float64)
        self.sum_outer = np.asarray(self.sum_outer, dtype=np.float64)
        self.n = int(self.n)
        d = self.sum.shape[0]
        assert self.sum.shape == (d,) and self.sum_outer.shape == (d, d), (
            self.sum.shape, self.sum_outer.shape)

    @classmethod
    def empty(cls, dim: int) -> FeatureStats:
        return cls(np.zeros(dim), np.zeros((dim, dim)), 0)

    @classmethod
    def of(cls, features: np.ndarray) -> FeatureStats:
        """Statistics of one array of features [N, D]."""
        features = np.asarray(features)
        return cls.empty(features.shape[1]).update(features)

    @property
    def dim(self) -> int:
        return self.sum.shape[0]

    def update(self, features: np.ndarray) -> FeatureStats:
        """Add features [N, D] in place; returns self."""
        x = np.asarray(features, dtype=np.float64)  # [N, D]
        assert x.ndim == 2 and x.shape[1] == self.dim, (x.shape, self.dim)
        self.sum += x.sum(axis=0)
        self.sum_outer += x.T @ x
        self.n += x.shape[0]
        return self

    def merge(self, other: FeatureStats) -> FeatureStats:
        """Statistics of the union of both sets (a new object)."""
        assert other.dim == self.dim, (other.dim, self.dim)
        return FeatureStats(self.sum + other.sum, self.sum_outer + other.sum_outer, self.n + other.n)

    @staticmethod
    def merge_all(parts: Iterable[FeatureStats]) -> FeatureStats:
        parts = list(parts)
        if not parts:
            raise ValueError("merge_all needs at least one FeatureStats")
        out = FeatureStats.empty(parts[0].dim)
        for p in parts:
            out = out.merge(p)
        return out

    def mean(self) -> np.ndarray:
        """mu [D]."""
        if self.n < 1:
            raise ValueError("the mean of zero features is undefined")
        return self.sum / self.n

    def cov(self) -> np.ndarray:
        """Unbiased covariance [D, D] (divides by N - 1, as np.cov does)."""
        if self.n < 2:
            raise ValueError(f"a covariance needs at least 2 features, got {self.n}")
        mu = self.mean()
        return (self.sum_outer - self.n * np.outer(mu, mu)) / (self.n - 1)

    def to_npz(self, path: PathLike) -> None:
        """Write sums plus ``mu``/``sigma``; pytorch-fid's CLI reads the latter from a .npz."""
        with open(path, "wb") as f:  # a file object: np.savez would append ".npz" to names
            np.savez(f, sum=self.sum, sum_outer=self.sum_outer, n=np.int64(self.n),
                     mu=self.mean(), sigma=self.cov())

    @classmethod
    def from_npz(cls, path: PathLike) -> FeatureStats:
        with np.load(path) as f:
            if "sum" not in f:
                raise ValueError(f"{path} holds no feature sums (only mu/sigma?), cannot merge it")
            return cls(f["sum"], f["sum_outer"], int(f["n"]))


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^(1/2)).

    Tr (sigma1 sigma2)^(1/2) is the sum of the square roots of the eigenvalues of
    sigma1 sigma2, which are those of the symmetric PSD matrix R^T sigma2 R with
    sigma1 = R R^T. We compute it that way (one `eigh` of sigma1, one small `eigvalsh`)
    instead of pytorch-fid's ``scipy.linalg.sqrtm(sigma1 @ sigma2)``: the same quantity,
    but 10-20x faster at 2048-d on a CPU (~1.5 s against ~25 s: FID per frame index adds
    up), and no eps added to the diagonals when the product is singular (fewer samples than
    dimensions): R keeps only the numerically non-zero eigen-directions of sigma1, so a set
    against itself gives 0 to rounding. Agreement with pytorch-fid is tested.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    assert mu1.shape == mu2.shape == (d,) and sigma1.shape == sigma2.shape == (d, d), (
        mu1.shape, mu2.shape, sigma1.shape, sigma2.shape)

    w, v = np.linalg.eigh(sigma1)  # ascending; sigma1 = v diag(w) v^T
    tol = max(w.max(initial=0.0), 0.0) * d * np.finfo(np.float64).eps  # numerical rank, as matrix_rank
    nonzero = w > tol
    r = v[:, nonzero] * np.sqrt(w[nonzero])  # [D, k], sigma1 = r r^T
    m = r.T @ sigma2 @ r  # [k, k]: its eigenvalues are the non-zero ones of sigma1 sigma2
    ev = np.linalg.eigvalsh((m + m.T) / 2) if m.size else np.zeros(0)
    tr_covmean = np.sqrt(np.clip(ev, 0.0, None)).sum()

    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * tr_covmean)
