"""Evaluation metrics: closed forms, pytorch-fid's own CLI on the same files, an independent SSIM.

No pretrained weights can be downloaded here, so the tests write files with the real keys and
shapes (random values) into a temporary cache: the comparisons check the code paths (reading,
resizing, networks, statistics), not the trained weights.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.ndimage import correlate1d

from deeplandscape.evaluate import weights
from deeplandscape.evaluate.fid import InceptionFeatures, fid_from_folders
from deeplandscape.evaluate.image_metrics import (
    MaskedLPIPS,
    lpips_model,
    masked_lpips,
    masked_ssim,
    masked_ssim_per_image,
)
from deeplandscape.evaluate.stand_ins import random_backbone_state, random_inception_state
from deeplandscape.evaluate.stats import FeatureStats, frechet_distance
from deeplandscape.evaluate.weights import MissingWeightsError, WeightFile, WeightsChecksumError


# ---------------------------------------------------------------- weight files written by the tests

@pytest.fixture(scope="module")
def torch_home(tmp_path_factory):
    """A TORCH_HOME whose hub/checkpoints holds the files under their registry names, where
    pytorch-fid (through torch.hub) and our default cache both look."""
    home = tmp_path_factory.mktemp("torch-home")
    ckpt = home / "hub" / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.save(random_inception_state(0), ckpt / weights.REGISTRY["inception"].filename)
    for name in ("vgg16", "alexnet"):
        torch.save(random_backbone_state(name, 1), ckpt / weights.REGISTRY[name].filename)
    return home


def _write_pngs(folder, count, seed, brightness):
    folder.mkdir()
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:64, 0:64] / 63.0
    for i in range(count):
        base = brightness * np.stack([yy, xx, 1 - yy], axis=-1) + rng.uniform(-0.5, 0.5, size=3)
        img = np.clip(255 * (base + 0.15 * rng.normal(size=(64, 64, 3))), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{i:03d}.png")
    return folder


def _pytorch_fid_save_stats(folders: dict, torch_home, out_dir) -> dict:
    """pytorch-fid's CLI on each folder, ``python -m pytorch_fid --save-stats A a.npz``, the
    folders in parallel (one thread each: 2 cores); returns {name: (mu, sigma)}.

    Why --save-stats and not ``python -m pytorch_fid A B``: the latter spends ~30 s of one
    core in scipy's sqrtm of a 2048 x 2048 matrix, which alone would blow this file's budget.
    The CLI's statistics plus `test_frechet_distance_agrees_with_pytorch_fid` cover the same
    ground (the full CLI run agreed to 5e-6 relative when tried by hand).
    """
    runs = {}
    for name, folder in folders.items():
        npz, log = out_dir / f"{name}.npz", out_dir / f"{name}.log"
        with open(log, "w") as f:
            runs[name] = npz, log, subprocess.Popen(
                [sys.executable, "-m", "pytorch_fid", "--save-stats", str(folder), str(npz),
                 "--device", "cpu", "--num-workers", "0"],
                env={"TORCH_HOME": str(torch_home), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
                stdout=f, stderr=subprocess.STDOUT)
    stats = {}
    try:
        for name, (npz, log, proc) in runs.items():
            proc.wait(timeout=300)
            assert proc.returncode == 0, log.read_text()
            with np.load(npz) as f:
                stats[name] = f["mu"], f["sigma"]
    finally:
        for _, _, proc in runs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return stats


@pytest.fixture
def cached_weights(torch_home, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.delenv("DEEPLANDSCAPE_WEIGHTS", raising=False)
    return torch_home / "hub" / "checkpoints"


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPLANDSCAPE_WEIGHTS", str(tmp_path / "empty"))
    return tmp_path / "empty"


# ---------------------------------------------------------------- Frechet distance, closed forms

def test_frechet_distance_diagonal_gaussians_closed_form():
    rng = np.random.default_rng(0)
    d = 16
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    got = frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-10)

    # The same Gaussians in a rotated basis: commuting covariances, same closed form.
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    got_rot = frechet_distance(q @ mu1, q @ np.diag(s1) @ q.T, q @ mu2, q @ np.diag(s2) @ q.T)
    assert got_rot == pytest.approx(expected, rel=1e-8)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    x = np.random.default_rng(1).normal(size=(300, 12)) @ np.random.default_rng(2).normal(size=(12, 12))
    s = FeatureStats.of(x)
    assert abs(frechet_distance(s.mean(), s.cov(), s.mean(), s.cov())) < 1e-6
    # Fewer samples than dimensions (singular covariance), as in a small FID run.
    s = FeatureStats.of(np.random.default_rng(3).uniform(size=(12, 256)))
    assert abs(frechet_distance(s.mean(), s.cov(), s.mean(), s.cov())) < 1e-9 * np.trace(s.cov())


@pytest.mark.parametrize("n1,n2,d", [(400, 300, 64), (20, 15, 256)])  # full-rank; singular as in small FID runs
def test_frechet_distance_agrees_with_pytorch_fid(n1, n2, d):
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(n1)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    s1 = FeatureStats.of(np.abs(rng.normal(size=(n1, d)) @ mix))  # non-negative, like pool3 features
    s2 = FeatureStats.of(np.abs(0.2 + rng.normal(size=(n2, d)) @ (1.3 * mix)))
    ours = frechet_distance(s1.mean(), s1.cov(), s2.mean(), s2.cov())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's deprecated disp= and singular-matrix warnings
        theirs = calculate_frechet_distance(s1.mean(), s1.cov(), s2.mean(), s2.cov())
    assert ours == pytest.approx(theirs, rel=1e-6)


# ---------------------------------------------------------------- FeatureStats

def test_feature_stats_merged_over_blocks_equal_one_shot_and_numpy(tmp_path):
    x = (3.0 + np.random.default_rng(3).normal(size=(101, 7))).astype(np.float32)  # offset mean
    one_shot = FeatureStats.of(x)
    blocks = [FeatureStats.of(b) for b in np.split(x, [1, 30, 30, 64])]  # sizes 1, 29, 0, 34, 37
    merged = FeatureStats.merge_all(blocks)
    assert merged.n == one_shot.n == 101
    np.testing.assert_allclose(merged.sum, one_shot.sum, rtol=1e-12)
    np.testing.assert_allclose(merged.sum_outer, one_shot.sum_outer, rtol=1e-12)
    np.testing.assert_allclose(merged.mean(), np.mean(x.astype(np.float64), axis=0), rtol=1e-12)
    np.testing.assert_allclose(merged.cov(), np.cov(x.astype(np.float64), rowvar=False), rtol=1e-9, atol=1e-12)
    inc = FeatureStats.empty(7)
    for b in np.split(x, 5 * [20]):
        inc.update(b)
    np.testing.assert_allclose(inc.cov(), one_shot.cov(), rtol=1e-12)

    # npz round trip; pytorch-fid reads mu/sigma from the same file.
    path = tmp_path / "stats.npz"
    merged.to_npz(path)
    back = FeatureStats.from_npz(path)
    assert back.n == merged.n
    np.testing.assert_array_equal(back.sum_outer, merged.sum_outer)
    from pytorch_fid.fid_score import compute_statistics_of_path

    mu, sigma = compute_statistics_of_path(str(path), None, 50, 7, "cpu")
    np.testing.assert_array_equal(mu, merged.mean())
    np.testing.assert_array_equal(sigma, merged.cov())


# ---------------------------------------------------------------- weight registry

def test_missing_weights_error_names_file_url_and_fetch_command(empty_cache):
    w = weights.REGISTRY["inception"]
    with pytest.raises(MissingWeightsError) as e:
        weights.weight_path("inception")
    msg = str(e.value)
    assert isinstance(e.value, FileNotFoundError)
    for part in (w.filename, str(empty_cache / w.filename), w.url, "deeplandscape weights fetch inception"):
        assert part in msg
    # No silent fallback to random weights anywhere a user can reach.
    with pytest.raises(MissingWeightsError, match="pt_inception-2015-12-05-6726825d.pth"):
        InceptionFeatures("cpu")
    with pytest.raises(MissingWeightsError, match="vgg16-397923af.pth"):
        MaskedLPIPS("vgg")
    with pytest.raises(MissingWeightsError, match="alexnet-owt-7be5be79.pth"):
        masked_lpips(np.zeros((1, 8, 8, 3), np.uint8), np.zeros((1, 8, 8, 3), np.uint8), np.ones((8, 8), bool), net="alex")
    rows = {r["name"]: r for r in weights.status()}
    assert set(rows) >= {"inception", "vgg16", "alexnet", "i3d"}
    assert not any(r["present"] for r in rows.values())
    assert weights.REGISTRY["i3d"].hash_prefix is None and weights.REGISTRY["i3d"].sha256 is None


def test_hash_prefixes_and_wrong_checksum_detected(empty_cache, monkeypatch):
    assert weights.REGISTRY["inception"].hash_prefix == "6726825d"
    assert weights.REGISTRY["vgg16"].hash_prefix == "397923af"
    assert weights.REGISTRY["alexnet"].hash_prefix == "7be5be79"

    empty_cache.mkdir()
    bad = empty_cache / weights.REGISTRY["inception"].filename
    bad.write_bytes(b"not the inception weights")
    with pytest.raises(WeightsChecksumError, match="6726825d"):
        weights.verify("inception")
    row = next(r for r in weights.status() if r["name"] == "inception")
    assert row["present"] and row["size_bytes"] == len(b"not the inception weights")

    # A file whose name carries its own sha256 prefix passes; a full sha256 is checked too.
    payload = b"toy weights"
    digest = hashlib.sha256(payload).hexdigest()
    toy = WeightFile("toy", f"toy-{digest[:8]}.pth", "unused", "test")
    monkeypatch.setitem(weights.REGISTRY, "toy", toy)
    (empty_cache / toy.filename).write_bytes(payload)
    assert weights.verify("toy") == digest
    monkeypatch.setitem(weights.REGISTRY, "toy", WeightFile("toy", toy.filename, "unused", "test", sha256="0" * 64))
    with pytest.raises(WeightsChecksumError):
        weights.verify("toy")


def test_fetch_checks_the_hash_of_what_it_downloads(empty_cache, tmp_path, monkeypatch):
    src = tmp_path / "served.pth"  # file:// needs no network but runs torch.hub's real download
    src.write_bytes(b"served weights")
    digest = hashlib.sha256(b"served weights").hexdigest()
    monkeypatch.setitem(weights.REGISTRY, "good", WeightFile("good", f"good-{digest[:8]}.pth", src.as_uri(), "test"))
    monkeypatch.setitem(weights.REGISTRY, "bad", WeightFile("bad", "bad-deadbeef.pth", src.as_uri(), "test"))
    path = weights.fetch("good")
    assert path == empty_cache / f"good-{digest[:8]}.pth" and path.read_bytes() == b"served weights"
    with pytest.raises(RuntimeError, match="could not download 'bad'"):
        weights.fetch("bad")
    assert not (empty_cache / "bad-deadbeef.pth").exists()


# ---------------------------------------------------------------- Inception features

def test_inception_features_layouts_and_self_fid(cached_weights):
    rng = np.random.default_rng(4)
    u8 = rng.integers(0, 256, size=(2, 40, 56, 3), dtype=np.uint8)
    ext = InceptionFeatures("cpu", weights_path=cached_weights / weights.REGISTRY["inception"].filename)
    f_u8 = ext.features(u8, batch_size=1)
    f_float = ext.features(torch.from_numpy(u8).permute(0, 3, 1, 2).float() / 255, batch_size=2)
    assert f_u8.shape == (2, 2048) and f_u8.dtype == np.float64
    np.testing.assert_allclose(f_u8, f_float, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        ext.features(torch.zeros(1, 3, 8, 8) - 1)

    # A set against itself, 2048-d with a rank-1 covariance: 0 to rounding.
    s = FeatureStats.of(f_u8)
    self_fid = frechet_distance(s.mean(), s.cov(), s.mean(), s.cov())
    print(f"self FID {self_fid:.3g}, trace of cov {np.trace(s.cov()):.3g}")
    assert abs(self_fid) < 1e-9 * np.trace(s.cov())


# ---------------------------------------------------------------- masked SSIM

def _reference_ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Wang et al. 2004 on one channel [H, W], float64: 11-tap Gaussian (sigma 1.5), L = 1,
    mirrored borders (torch 'reflect' = scipy 'mirror')."""
    t = np.arange(-5, 6)
    g = np.exp(-t ** 2 / (2 * 1.5 ** 2))
    g /= g.sum()

    def blur(z):
        return correlate1d(correlate1d(z, g, axis=0, mode="mirror"), g, axis=1, mode="mirror")

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mx, my = blur(x), blur(y)
    vx, vy, cxy = blur(x * x) - mx ** 2, blur(y * y) - my ** 2, blur(x * y) - mx * my
    return (2 * mx * my + c1) * (2 * cxy + c2) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))


def _reference_masked_ssim(a: np.ndarray, b: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """a, b float [N, 3, H, W], keep bool [N, H, W]: blank masked-out pixels in both, then the
    SSIM map averaged over channels and kept pixels, per image."""
    out = []
    for ai, bi, ki in zip(a.astype(np.float64), b.astype(np.float64), keep):
        maps = [_reference_ssim_map(ai[c] * ki, bi[c] * ki) for c in range(3)]
        out.append(np.mean(maps, axis=0)[ki].mean())
    return np.array(out)


def _pair_and_mask(seed=5, n=2, h=48, w=64):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    a = np.clip(np.stack([yy, xx, 0.5 + 0 * xx])[None] + 0.2 * rng.normal(size=(n, 3, h, w)), 0, 1)
    b = np.clip(a + 0.1 * rng.normal(size=a.shape), 0, 1)
    keep = np.ones((n, h, w), bool)
    keep[:, : h // 3] = False  # "sky"
    keep[1, -10:, 20:50] = False  # "water" in the second image only
    return a.astype(np.float32), b.astype(np.float32), keep


def test_masked_ssim_matches_reference_formula():
    a, b, keep = _pair_and_mask()
    got = masked_ssim_per_image(torch.from_numpy(a), torch.from_numpy(b), keep)
    ref = _reference_masked_ssim(a, b, keep)
    print(f"masked SSIM ours {got}  reference {ref}")
    np.testing.assert_allclose(got, ref, atol=2e-5)
    assert 0.2 < ref.min() < ref.max() < 0.95  # a non-trivial value
    assert masked_ssim(a, b, keep) == pytest.approx(ref.mean(), abs=2e-5)


def test_masked_ssim_identical_is_one_and_ignores_masked_pixels():
    a, b, keep = _pair_and_mask()
    assert masked_ssim(a, a, keep) == pytest.approx(1.0, abs=1e-6)
    base = masked_ssim_per_image(a, b, keep)
    b2 = b.copy()
    b2[~np.repeat(keep[:, None], 3, axis=1)] = np.random.default_rng(9).uniform(size=(~keep).sum() * 3)
    a2 = a.copy()
    a2[:, :, 0] = 0.0  # first row is "sky" in both images
    np.testing.assert_array_equal(masked_ssim_per_image(a2, b2, keep), base)
    # Changing kept pixels does change it.
    b3 = b.copy()
    b3[:, :, -5:] = 1 - b3[:, :, -5:]
    assert (masked_ssim_per_image(a, b3, keep) < base).all()
    # A mask shared by the batch, given as [H, W].
    np.testing.assert_allclose(masked_ssim_per_image(a, b, keep[0]),
                               _reference_masked_ssim(a, b, np.stack([keep[0]] * 2)), atol=2e-5)


# ---------------------------------------------------------------- masked LPIPS

@pytest.fixture(scope="module")
def lpips_vgg(torch_home):
    """Built once (LPIPS-VGG's construction random-initialises all of VGG16, ~2 s) and cached,
    so `masked_lpips` with $TORCH_HOME on the same file reuses it."""
    return lpips_model("vgg", weights_path=torch_home / "hub" / "checkpoints" / weights.REGISTRY["vgg16"].filename)


@pytest.mark.parametrize("net,registry_name", [("vgg", "vgg16"), ("alex", "alexnet")])
def test_lpips_backbone_comes_from_the_weight_file(cached_weights, lpips_vgg, net, registry_name):
    tv_state = torch.load(cached_weights / weights.REGISTRY[registry_name].filename, weights_only=True)
    trunk = (lpips_vgg if net == "vgg" else MaskedLPIPS(net)).model.net.state_dict()
    assert len(trunk) == len(tv_state)
    for key, value in trunk.items():
        torch.testing.assert_close(value, tv_state[f"features.{key.split('.', 1)[1]}"], rtol=0, atol=0)


def test_masked_lpips_zero_for_identical_and_ignores_masked_pixels(cached_weights, lpips_vgg):
    a, b, keep = _pair_and_mask(seed=6, n=2, h=64, w=64)
    assert masked_lpips(a, a, keep) == 0.0
    assert lpips_model("vgg") is lpips_vgg
    base = lpips_vgg.per_image(a, b, keep)
    print(f"masked LPIPS (random VGG) {base}")
    assert (base > 0).all()

    b2, a2 = b.copy(), a.copy()
    masked_out = ~np.repeat(keep[:, None], 3, axis=1)
    b2[masked_out] = np.random.default_rng(10).uniform(size=masked_out.sum())
    a2[masked_out] = 1.0
    np.testing.assert_array_equal(lpips_vgg.per_image(a2, b2, keep), base)

    b3 = b.copy()
    b3[:, :, 40:60, 10:40] = 1 - b3[:, :, 40:60, 10:40]  # kept region
    assert (lpips_vgg.per_image(a, b3, keep) > base).all()
    assert masked_lpips(a, b3, keep) > masked_lpips(a, b, keep)


# ---------------------------------------------------------------- FID against pytorch-fid's CLI

def test_fid_from_folders_matches_pytorch_fid_cli(cached_weights, torch_home, tmp_path):
    # Few images: each costs a full 299 px Inception pass, twice (ours and the CLI's).
    a = _write_pngs(tmp_path / "a", 8, seed=0, brightness=0.6)
    b = _write_pngs(tmp_path / "b", 6, seed=1, brightness=0.9)
    cli = _pytorch_fid_save_stats({"a": a, "b": b}, torch_home, tmp_path)
    theirs = frechet_distance(*cli["a"], *cli["b"])

    ours = fid_from_folders(a, b)
    print(f"FID ours {ours:.6f}  from pytorch-fid CLI statistics {theirs:.6f}")
    assert ours > 1.0  # the two folders differ: a real, non-trivial distance
    assert ours == pytest.approx(theirs, rel=1e-3)
    # pytorch-fid's .npz statistics are accepted in place of a folder, as by its CLI.
    assert fid_from_folders(tmp_path / "a.npz", tmp_path / "b.npz") == pytest.approx(theirs, rel=1e-12)
    # A folder against itself (8 images, 2048-d: a singular covariance) is 0 to rounding.
    self_fid = fid_from_folders(tmp_path / "a.npz", tmp_path / "a.npz")
    assert abs(self_fid) < 1e-9 * np.trace(cli["a"][1])
