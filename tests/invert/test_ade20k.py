"""The authors' ADE20K segmentation from the weight cache: their file layout, the class lists,
the missing-file error, and the default for photos without a mask file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deeplandscape.evaluate import weights
from deeplandscape.evaluate.generation import MaskSpec, StaticMasks
from deeplandscape.evaluate.weights import MissingWeightsError
from deeplandscape.invert import ade20k
from deeplandscape.invert.masks import Segmenter, resolve_segmentation

SKY, WATER, TREE = 2, 21, 4  # ADE20K, 0-based


def write_their_files(cache, winner: int, seed: int = 0) -> None:
    """Stand-in files in their layout (CSAIL's synchronised BN bookkeeping included), random
    weights, the last layer set so that class `winner` wins on every pixel."""
    torch.manual_seed(seed)
    net = ade20k.ADE20KSegmenter()
    with torch.no_grad():
        net.decoder.conv_last[4].weight.zero_()
        net.decoder.conv_last[4].bias.fill_(-1.0)[winner] = 5.0
    cache.mkdir(parents=True, exist_ok=True)
    for part, name in ((net.encoder, "ade20k-encoder"), (net.decoder, "ade20k-decoder")):
        state = part.state_dict()
        for key in [k for k in state if k.endswith(".running_mean")]:
            base = key.removesuffix("running_mean")
            state |= {base + "_running_iter": torch.tensor(1), base + "_tmp_running_mean": torch.zeros_like(state[key]),
                      base + "_tmp_running_var": torch.ones_like(state[key])}
        torch.save(state, cache / weights.REGISTRY[name].filename)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPLANDSCAPE_WEIGHTS", str(tmp_path / "weights"))
    return tmp_path / "weights"


def test_masks_of_the_photo_size_from_the_class_lists(cache):
    photo = np.random.default_rng(0).integers(0, 255, (48, 80, 3), dtype=np.uint8)
    expected = {SKY: (True, True), WATER: (True, False), TREE: (False, False)}
    for winner, (dynamic_all, sky_all) in expected.items():
        write_their_files(cache, winner)
        dynamic, sky = Segmenter("ade20k", "2,21,26,60,113,128", "2")(photo)
        assert dynamic.shape == sky.shape == (48, 80) and dynamic.dtype == sky.dtype == bool
        assert (dynamic.all(), sky.all(), dynamic.any(), sky.any()) == (dynamic_all, sky_all, dynamic_all, sky_all)


def test_missing_files_name_the_file_and_the_command(cache):
    assert resolve_segmentation("") == "none"  # no files: no automatic masks
    for fails in (lambda: Segmenter("ade20k", "2,21", "2"), lambda: resolve_segmentation("ade20k")):
        with pytest.raises(MissingWeightsError, match=r"ade20k-resnet50dilated-ppm_deepsup-encoder_epoch_20.pth at "
                                                       r".*deeplandscape weights fetch ade20k"):
            fails()
    write_their_files(cache, SKY)
    # With the files: ADE20K, naming this process's cache for the Ray workers.
    assert resolve_segmentation("") == resolve_segmentation("ade20k") == f"ade20k:{cache}"
    assert resolve_segmentation("none") == "none" and resolve_segmentation("my.pt").endswith("/my.pt")
    dynamic, _ = Segmenter(f"ade20k:{cache}", "2", "2")(np.zeros((8, 8, 3), np.uint8))  # a worker elsewhere
    assert dynamic.all()


def test_another_network_in_their_file_names_is_refused(cache):
    write_their_files(cache, SKY)
    path = cache / weights.REGISTRY["ade20k-decoder"].filename
    state = torch.load(path, weights_only=True)
    state["conv_last.4.weight"] = torch.zeros(10, 512, 1, 1)  # 10 classes, not ADE20K's 150
    torch.save(state, path)
    with pytest.raises(ValueError, match=r"decoder_epoch_20.pth: 'conv_last.4.weight' has shape \(10, 512, 1, 1\)"):
        ade20k.load_ade20k()


def test_generation_protocol_masks_with_ade20k(cache):
    """`evaluate generation --masks segmentation:ade20k`: sky and water are left out of the pairs."""
    pairs = np.random.default_rng(1).integers(0, 255, (1, 2, 32, 32, 3), dtype=np.uint8)
    for winner, compared in ((SKY, False), (TREE, True)):
        write_their_files(cache, winner)
        keep = StaticMasks(MaskSpec.parse("segmentation:ade20k"), None, torch.device("cpu"))(pairs)
        assert keep.shape == (1, 32, 32) and keep.dtype == bool and bool(keep.all()) == compared
        assert bool(keep.any()) == compared
