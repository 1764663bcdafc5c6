"""Inversion of synthetic photos into a tiny trained run (paper 3.2, Fig. 3)."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from deeplandscape.animate.homography import CLOCK_DIRECTIONS
from deeplandscape.config import load_config
from deeplandscape.invert.animate_photos import PhotoAnimator, inversion_config
from deeplandscape.invert.inversion import BatchedPlateauAdam, Inverter
from deeplandscape.invert.photos import to_model_input
from deeplandscape.render import Animation, VideoOutputs, to_uint8
from deeplandscape.runs import load_model

FAST = {"invert.opt_steps": "60", "invert.finetune_steps": "60"}


@pytest.fixture(scope="module")
def animator(tiny_run):
    icfg = inversion_config(load_model(str(tiny_run)).cfg, None, FAST)
    return PhotoAnimator(str(tiny_run), icfg, log=lambda _m: None)


@pytest.fixture(scope="module")
def photos(animator, synth_data):
    """Four synthetic photos with their ground-truth sky + water masks (X.mask.png)."""
    files = sorted(p for p in (synth_data / "photos").glob("*.png") if not p.name.endswith(".mask.png"))[:4]
    read = [animator.read(str(p)) for p in files]
    assert all(p.mask_source == "file" and p.dynamic.any() and not p.dynamic.all() for p in read)
    return read


def mean_final_l1(inv) -> float:
    return float(np.mean(list(inv.losses.values())[-1]))


def invert_with(animator, photos, method):
    animator.inverter.cfg = dataclasses.replace(animator.cfg, method=method)
    try:
        return animator.inverter.invert(
            torch.stack([to_model_input(p.square) for p in photos]),
            method, torch.stack([torch.from_numpy(p.dynamic).float()[None] for p in photos]))
    finally:
        animator.inverter.cfg = animator.cfg


def test_reconstruction_error_falls_from_E_to_EO_to_EOIF(animator, photos):
    errors = {m: mean_final_l1(invert_with(animator, photos, m)) for m in ("E", "EO", "EOIF")}
    assert errors["E"] > errors["EO"] > errors["EOIF"], errors
    assert errors["EOIF"] < 0.8 * errors["E"], errors


def test_segmentation_keeps_each_noise_on_its_own_region(animator, photos):
    inv = invert_with(animator, photos, "EOIFS")
    assert inv.method == "EOIFS"
    for S_st, S_dyn, keep_dyn in zip(inv.S_st, inv.S_dyn, inv.keep_dyn):
        dynamic = keep_dyn.bool()
        assert (S_st[dynamic] == 0).all(), "S_st must be zero on sky and water"
        assert (S_dyn[~dynamic] == 0).all(), "S_dyn must be zero on static pixels"
    finest_dyn = inv.S_dyn[-1][inv.keep_dyn[-1].bool()]
    finest_st = inv.S_st[-1][~inv.keep_dyn[-1].bool()]
    assert finest_dyn.abs().mean() > 0 and finest_st.abs().mean() > 0, "optimisation moved both noises"


def test_eoifs_animation_moves_the_dynamic_region_far_more_than_the_static_one(animator, photos):
    inv = invert_with(animator, photos[:2], "EOIFS")
    ratios = []
    for i, photo in enumerate(photos[:2]):
        frames = np.concatenate(list(animator.render(inv.photo(i), Animation(speed=4.0, horizon=photo.horizon), 12)))
        change = frames.astype(np.float64).std(axis=0).mean(axis=-1)  # [R, R] per-pixel std over time
        dyn = photo.dynamic
        ratios.append(change[dyn].mean() / max(change[~dyn].mean(), 1e-6))
    # On this tiny model the ratio is about 4-10 (see the closing note of issue 5).
    print(f"dynamic/static change ratios: {ratios}")
    assert min(ratios) > 2.5, ratios


def test_batched_inversion_equals_one_photo_at_a_time(animator, photos):
    """float64, so the comparison sees the algorithm, not float32 summation order."""
    src = animator.inverter
    G = copy.deepcopy(src.G).double()
    E = copy.deepcopy(src.E).double()
    cfg = dataclasses.replace(animator.cfg, opt_steps=25, finetune_steps=25)
    inverter = Inverter(G, src.resolution, src.alpha, cfg, E)
    x = torch.stack([to_model_input(p.square) for p in photos[:3]]).double()
    dyn = torch.stack([torch.from_numpy(p.dynamic).double()[None] for p in photos[:3]])
    dyn[1] = float("nan")  # photo 1 has no mask: EOIF for it, EOIFS for the others, in one batch
    batched = inverter.invert(x, "EOIFS", dyn)
    for i in range(3):
        alone = inverter.invert(x[i : i + 1], "EOIFS", dyn[i : i + 1])
        one = batched.photo(i)
        torch.testing.assert_close(one.ws, alone.ws, rtol=1e-7, atol=1e-8)
        for a, b in zip(one.S_st + one.S_dyn, alone.S_st + alone.S_dyn):
            torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-8)
        for k in alone.params:
            torch.testing.assert_close(one.params[k], alone.params[k], rtol=1e-7, atol=1e-8)
    assert (batched.keep_dyn[-1][1] == 1).all() and (batched.keep_st[-1][1] == 1).all()


def test_plateau_adam_halves_each_photos_rate_on_its_own():
    p = torch.zeros(2, 3)
    opt = BatchedPlateauAdam([([p], 0.1)], batch=2, patience=3)
    for step in range(10):
        losses = torch.tensor([1.0, 1.0 / (step + 1)])  # photo 0 is stuck, photo 1 improves
        opt.step(losses, [[torch.ones(2, 3)]])
    assert opt.factor[0] == 0.25 and opt.factor[1] == 1.0
    assert p[0].abs().max() < p[1].abs().max()


def test_missing_encoder_says_how_to_train_one(tmp_path, tiny_run):
    import shutil

    from deeplandscape.invert.encoder import load_encoder

    bare = tmp_path / "run"
    shutil.copytree(tiny_run / "checkpoints", bare / "checkpoints")
    with pytest.raises(FileNotFoundError, match="deeplandscape train-encoder"):
        load_encoder(str(bare))
    with pytest.raises(FileNotFoundError, match="train-encoder"):
        PhotoAnimator(str(bare), inversion_config(load_model(str(bare)).cfg, None, {"invert.method": "EOIF"}))
    # MO starts from the mean w: no encoder needed
    PhotoAnimator(str(bare), inversion_config(load_model(str(bare)).cfg, None, {"invert.method": "MO"}))


def test_pretrained_backbone_comes_from_the_cache_or_a_clear_error(tmp_path, monkeypatch):
    import torchvision

    from deeplandscape.evaluate.weights import MissingWeightsError
    from deeplandscape.invert.encoder import build_encoder

    monkeypatch.setenv("DEEPLANDSCAPE_WEIGHTS", str(tmp_path))
    cfg = load_config("tiny", {"invert.encoder_pretrained": "true"})
    with pytest.raises(MissingWeightsError, match="resnet18-f37072fd.pth"):
        build_encoder(cfg)
    state = torchvision.models.resnet18(weights=None).state_dict()  # right shapes, random values
    torch.save(state, tmp_path / "resnet18-f37072fd.pth")
    E = build_encoder(cfg)
    assert torch.equal(E.stem[0].weight, state["conv1.weight"])
    assert torch.equal(E.layer4[1].conv2.weight, state["layer4.1.conv2.weight"])


def test_inversion_preset_sets_only_invert_keys(tiny_run):
    cfg = load_model(str(tiny_run)).cfg
    authors = inversion_config(cfg, "inversion-authors")
    assert authors.init_weight == 1.0 and authors.finetune_perceptual == 0.1
    assert authors.opt_steps == cfg.invert.opt_steps  # the run's tiny settings stay
    with pytest.raises(ValueError, match="only set invert"):
        inversion_config(cfg, "tiny")
    with pytest.raises(ValueError, match="invert.method"):
        inversion_config(cfg, None, {"invert.method": "XYZ"})


def test_outputs_of_one_photo(tmp_path, animator, photos):
    inv = invert_with(animator, photos[:1], "EOIFS")
    result = animator.write(photos[0], inv.photo(0), str(tmp_path / "one"), ["3h"], 4, 2.5, VideoOutputs(scale=2))
    meta = json.loads((tmp_path / "one" / "inversion.json").read_text())
    assert meta["method"] == "EOIFS" and meta["mask"] == "file" and set(meta["losses"]) == {"init", "optimise", "finetune"}
    assert sorted(p.split("/")[-1] for p in result["outputs"]) == ["3h.jpg", "3h.mp4", "compare.png", "inversion.json"]


@pytest.mark.parametrize("authors_mode", [True, False])
def test_the_first_frame_is_the_reconstruction(animator, photos, authors_mode):
    """An animated photo starts exactly where its inversion ends, in both warp modes."""
    inv = invert_with(animator, photos[:1], "EOIFS").photo(0)
    animation = Animation(motion=CLOCK_DIRECTIONS["12h"], speed=4.0, horizon=photos[0].horizon,
                          authors_mode=authors_mode)
    video = np.concatenate(list(animator.render(inv, animation, frames=16)))
    recon = to_uint8(animator.inverter.reconstruct(inv))[0]
    assert np.abs(video[0].astype(int) - recon).max() <= 1  # float error can flip a rounding
    assert not np.array_equal(video[-1], video[0])  # and then it moves (the tiny test model only a little)


def test_perceptual_term_uses_lpips_vgg_from_the_weight_cache(tmp_path, monkeypatch, tiny_run, photos):
    from deeplandscape.evaluate.image_metrics import _cached_lpips
    from deeplandscape.evaluate.stand_ins import write_stand_in_weights
    from deeplandscape.evaluate.weights import MissingWeightsError

    monkeypatch.setenv("DEEPLANDSCAPE_WEIGHTS", str(tmp_path))
    _cached_lpips.cache_clear()
    settings = {"invert.method": "EOIF", "invert.opt_steps": "3", "invert.finetune_steps": "8",
                "invert.finetune_perceptual": "10"}
    icfg = inversion_config(load_model(str(tiny_run)).cfg, None, settings)
    with pytest.raises(MissingWeightsError, match="vgg16-397923af.pth"):
        PhotoAnimator(str(tiny_run), icfg)
    write_stand_in_weights(tmp_path, ("vgg16",))  # right shapes, random values
    animator = PhotoAnimator(str(tiny_run), icfg, log=lambda _m: None)
    inv = animator.invert(photos[:2])
    assert np.mean(inv.losses["finetune"]) < np.mean(inv.losses["optimise"])
    _cached_lpips.cache_clear()
