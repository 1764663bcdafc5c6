"""`deeplandscape evaluate fid | fvd | generation` end to end on local Ray, and the report.

Stand-in weights (conftest.py) in a temporary cache; real PNG folders, real mp4s, and a
generator trained for a few steps in the test with the project's own training loop.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from deeplandscape.cli import main
from deeplandscape.data.synth import write_dataset
from deeplandscape.evaluate import report
from deeplandscape.evaluate.fid import fid_from_folders
from deeplandscape.evaluate.generation import MaskSpec, StaticMasks, pair_latents, render_pairs
from deeplandscape.evaluate.pipeline import load_stats_file, save_stats
from deeplandscape.evaluate.stats import FeatureStats, frechet_distance
from deeplandscape.train.loop import WorkerContext, run_worker
from tests.conftest import MOTO_SECRET, noisy_tiny_generator, tiny_config
from tests.fresh_ray import run_commands


def _write_pngs(folder, count, seed, brightness, size=32):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    for i in range(count):
        base = brightness * np.stack([yy, xx, 1 - yy], axis=-1) + rng.uniform(-0.5, 0.5, size=3)
        img = np.clip(255 * (base + 0.15 * rng.normal(size=(size, size, 3))), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"{i:03d}.png")
    return folder


def _metrics(out_dir) -> dict:
    return json.loads((out_dir / "metrics.json").read_text())


def _assert_report(out_dir, plots: int) -> str:
    page = (out_dir / "index.html").read_text()
    assert page.startswith("<!doctype html>") and "http" not in page.replace("http://www.w3.org/2000/svg", "")
    assert page.count("<svg") >= plots and "<polyline" in page
    return page


# ---------------------------------------------------------------- report

def test_report_renders_plots_offline(tmp_path):
    curve = report.line_plot({"ours (mean 0.05)": ([0, 4, 8], [0.01, 0.05, 0.09]),
                              "other": ([0, 4, 8], [0.02, float("nan"), 0.2])}, "LPIPS", "frame index n", "LPIPS")
    hist = report.histogram({"SSIM": [0.8, 0.85, 0.9, float("nan")]}, "SSIM per pair", "SSIM")
    spectrum = report.spectrum_plot({"A": np.diag([4.0, 1.0, 1e-3]), "B": np.eye(3)})
    assert curve.count("<polyline") == 2 and "ours (mean 0.05)" in curve and "frame index n" in curve
    assert hist.count("<polyline") == 1 and spectrum.count("<polyline") == 2
    image = report.png_data_uri(np.zeros((4, 4, 3), np.uint8))
    outputs = report.write_report(str(tmp_path / "r"), "T", {"value": float("nan"), "x": np.float64(1.5)},
                                  [report.Section("plots", curve + hist + spectrum + f"<img src='{image}'>")])
    assert json.loads((tmp_path / "r" / "metrics.json").read_text()) == {"value": None, "x": 1.5}
    _assert_report(tmp_path / "r", plots=3)
    assert outputs["report"].endswith("index.html")


# ---------------------------------------------------------------- evaluate fid

def test_evaluate_fid_cli_equals_the_library_and_caches(local_ray, eval_env, image_stand_ins, tmp_path, capsys):
    # Few images: each costs a 299 px Inception pass, twice (Ray Data, then the library).
    a = _write_pngs(tmp_path / "a", 4, seed=0, brightness=0.6)
    b = _write_pngs(tmp_path / "b", 3, seed=1, brightness=0.9)
    Image.fromarray(np.zeros((32, 32), np.uint8)).save(a / "000.mask.png")  # a mask, not an image of the set
    out = tmp_path / "out"
    args = ["evaluate", "fid", str(a), str(b), "--out", str(out), "--workers", "1", "--batch-size", "4",
            "--save-stats", str(tmp_path / "stats")]
    assert main(args) == 0
    printed = capsys.readouterr().out
    value = float(re.search(r"FID (\S+)", printed).group(1))
    m = _metrics(out)

    (a / "000.mask.png").unlink()  # pytorch-fid would read it as an image
    expected = fid_from_folders(a, b)  # pytorch-fid's Inception and reading, in this process
    print(f"evaluate fid (Ray Data) {m['value']:.6f}, fid_from_folders {expected:.6f}")
    assert m["value"] == pytest.approx(expected, rel=1e-5)
    assert value == pytest.approx(m["value"], abs=1e-6)
    assert (m["a"]["files"], m["b"]["files"], m["a"]["cache"]) == (4, 3, "miss")
    assert m["settings"]["network"] == "inception" and m["settings"]["resolution"] is None
    _assert_report(out, plots=1)
    saved = load_stats_file(str(tmp_path / "stats" / "a.npz"))
    assert isinstance(saved, FeatureStats) and saved.n == 4

    # Again: both sets come from the statistics cache, nothing is computed (masks are not
    # images of a set, so removing one changed nothing).
    assert main(args) == 0
    again = _metrics(out)
    assert (again["a"]["cache"], again["b"]["cache"]) == ("hit", "hit")
    assert again["a"]["computed"] == again["b"]["computed"] == 0
    assert again["value"] == m["value"]
    # Saved statistics stand in for a folder.
    assert main(["evaluate", "fid", str(tmp_path / "stats" / "a.npz"), str(b), "--out", str(out)]) == 0
    assert _metrics(out)["value"] == pytest.approx(m["value"], rel=1e-12)


def test_evaluate_fid_reads_and_writes_s3(moto, eval_env, image_stand_ins, tmp_path):
    """Both collections in a bucket (a moto server) and the statistics saved back to it, in a
    child process whose Ray workers have the endpoint; the value is pytorch-fid's on the same files."""
    a = _write_pngs(tmp_path / "a", 4, seed=2, brightness=0.5)
    b = _write_pngs(tmp_path / "b", 3, seed=3, brightness=0.8)
    bucket = moto.bucket("eval")
    for folder in (a, b):
        for png in folder.iterdir():
            moto.client.upload_file(str(png), "eval", f"sets/{folder.name}/{png.name}")
    out = tmp_path / "out"
    done = run_commands([["evaluate", "fid", f"{bucket}/sets/a", f"{bucket}/sets/b", "--out", str(out),
                          "--workers", "1", "--batch-size", "4", "--save-stats", f"{bucket}/stats"]])
    assert done.returncode == 0, done.stdout[-3000:]
    m = _metrics(out)
    assert (m["a"]["files"], m["b"]["files"]) == (4, 3)
    assert m["value"] == pytest.approx(fid_from_folders(a, b), rel=1e-5)
    saved = load_stats_file(f"{bucket}/stats/a.npz")
    assert isinstance(saved, FeatureStats) and saved.n == 4
    assert MOTO_SECRET not in done.stdout and MOTO_SECRET not in (out / "metrics.json").read_text()


def test_missing_weights_is_a_clear_cli_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DEEPLANDSCAPE_WEIGHTS", str(tmp_path / "empty"))
    a = _write_pngs(tmp_path / "a", 2, seed=0, brightness=0.6)
    assert main(["evaluate", "fid", str(a), str(a), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "pt_inception-2015-12-05-6726825d.pth" in err and "deeplandscape weights fetch inception" in err


def test_fid_of_two_saved_statistics_needs_no_inception_file(tmp_path, monkeypatch, capsys):
    """Two `.npz` files hold everything the distance needs: no network file is asked for."""
    monkeypatch.setenv("DEEPLANDSCAPE_WEIGHTS", str(tmp_path / "empty"))
    rng = np.random.default_rng(0)
    a, b = FeatureStats.of(rng.normal(size=(64, 2048))), FeatureStats.of(rng.normal(0.3, 1.0, size=(64, 2048)))
    save_stats(a, str(tmp_path / "a.npz"))
    save_stats(b, str(tmp_path / "b.npz"))
    assert main(["evaluate", "fid", str(tmp_path / "a.npz"), str(tmp_path / "b.npz"), "--out", str(tmp_path / "o")]) == 0
    expected = frechet_distance(a.mean(), a.cov(), b.mean(), b.cov())
    assert f"FID {expected:.6f}" in capsys.readouterr().out
    assert json.loads((tmp_path / "o/metrics.json").read_text())["settings"]["weights_file"] is None


# ---------------------------------------------------------------- evaluate fvd, with curves

def test_evaluate_fvd_cli_with_frame_curves(local_ray, eval_env, image_stand_ins, tmp_path, capsys):
    # Same file names in A and B: the videos pair up for LPIPS / SSIM; A has ground-truth masks.
    write_dataset(tmp_path / "a", images=0, videos=2, frames=16, size=32, seed=3)
    write_dataset(tmp_path / "b", images=0, videos=2, frames=16, size=32, seed=4)
    out = tmp_path / "out"
    assert main(["evaluate", "fvd", str(tmp_path / "a" / "videos"), str(tmp_path / "b" / "videos"), "--out", str(out),
                 "--workers", "1", "--curves-every", "7", "--curves-reference", "first"]) == 0
    m = _metrics(out)
    assert m["metric"] == "fvd" and m["value"] > 0
    curves = m["curves"]
    assert curves["frames"] == [0, 7, 14] and curves["reference"] == "first"
    assert curves["videos"] == {"a": 2, "b": 2, "pairs": 2, "pairs_with_mask": 2}
    assert all(v is not None and v > 0 for v in curves["fid"] + curves["lpips"])
    assert all(0 < v < 1 for v in curves["ssim"])
    page = _assert_report(out, plots=4)  # spectra + FID, LPIPS, SSIM over the frame index
    assert "frame index n" in page
    assert "FVD" in capsys.readouterr().out


# ---------------------------------------------------------------- evaluate generation

@pytest.fixture(scope="module")
def tiny_run(synth_data, tmp_path_factory):
    """A tiny DeepLandscape trained in-process for 6 steps: 8 px, then fading into 16 px."""
    run_dir = tmp_path_factory.mktemp("tiny-run")
    cfg = tiny_config(synth_data, **{
        "train.batch": '{"8": 8, "16": 4}', "train.phase_kimg": "0.032", "train.fade_kimg": "0.016",
        "train.p_pair_anneal_kimg": "0.02", "train.checkpoint_kimg": "1000", "train.sample_kimg": "0",
        "train.max_steps": "6", "train.log_every": "3"})
    run_worker(cfg, str(run_dir), WorkerContext(log=lambda line: None))
    return run_dir


def test_evaluate_generation_on_a_tiny_run(local_ray, eval_env, image_stand_ins, tiny_run, tmp_path, capsys):
    real = tmp_path / "real"
    write_dataset(real, images=3, videos=0, frames=1, size=64, seed=5)  # photos + ground-truth masks
    out = tmp_path / "gen"
    assert main(["evaluate", "generation", "--run-dir", str(tiny_run), "--real-images", str(real / "photos"),
                 "--pairs", "2", "--samples", "3", "--out", str(out), "--workers", "1", "--batch-size", "4"]) == 0
    m = _metrics(out)
    for key in ("fid", "lpips", "ssim"):
        assert isinstance(m[key], float) and np.isfinite(m[key]), key
    assert m["fid"] > 0 and m["lpips"] > 0 and 0 < m["ssim"] < 1
    assert (m["pairs"], m["samples"], m["real"]["files"]) == (2, 3, 3)
    assert m["model"]["resolution"] == 16
    assert m["masks"]["mode"] == "prior" and m["masks"]["masks_used"] == 3
    assert 0 < m["masks"]["static_fraction"] < 1
    page = _assert_report(out, plots=3)
    assert page.count("<img") == 2  # example pairs
    assert "LPIPS" in capsys.readouterr().out


def test_pairs_do_not_depend_on_batching_and_share_their_static_inputs():
    G = noisy_tiny_generator()
    together = render_pairs(G, pair_latents(G, [0, 1, 2], seed=7, resolution=16), 16, 1.0)
    apart = np.concatenate([render_pairs(G, pair_latents(G, idx, seed=7, resolution=16), 16, 1.0)
                            for idx in ([0], [1, 2])])
    assert together.shape == (3, 2, 16, 16, 3)
    np.testing.assert_allclose(together.astype(int), apart.astype(int), atol=1)
    lat = pair_latents(G, [0, 1], seed=7, resolution=16)
    assert torch.equal(lat.S_st[-1][:, 0], lat.S_st[-1][:, 0])  # one S_st per pair
    assert lat.z_dyn.shape[1] == 2 and not torch.equal(lat.z_dyn[:, 0], lat.z_dyn[:, 1])
    assert (together[:, 0] != together[:, 1]).any()


def test_segmentation_masks_keep_pixels_static_in_both_images(tmp_path):
    class TopHalfIsSky(torch.nn.Module):
        """The inversion's segmentation contract: [1, 3, H, W] -> logits [1, C, H, W] (ADE20K: 2 = sky,
        21 = water); here the top half is sky, and bright red pixels are water."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            logits = torch.zeros(x.shape[0], 150, x.shape[2], x.shape[3])  # ADE20K: 150 classes
            logits[:, 0] = 1.0  # "wall": static
            logits[:, 2, : x.shape[2] // 2] = 5.0
            logits[:, 21] = 5.0 * (x[:, 0] > 1.5).float()  # ImageNet-normalised red of 255 is ~2.2
            return logits

    path = tmp_path / "seg.pt"
    torch.jit.save(torch.jit.script(TopHalfIsSky()), str(path))
    pairs = np.zeros((1, 2, 8, 8, 3), np.uint8)
    pairs[0, 1, -1, :4, 0] = 255  # the second image's last row is "water" on its left half
    keep = StaticMasks(MaskSpec.parse(f"segmentation:{path}"), None, torch.device("cpu"))(pairs)
    expected = np.ones((8, 8), bool)
    expected[:4] = False
    expected[-1, :4] = False
    np.testing.assert_array_equal(keep[0], expected)
    with pytest.raises(ValueError, match="segmentation:PATH"):
        MaskSpec.parse("segmentation")
