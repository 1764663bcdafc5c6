"""What the discriminators are shown: fake pairs, real pairs and crop-sampled pairs."""

from __future__ import annotations

import torch

from deeplandscape.data.training import TrainingData
from deeplandscape.nets.generator import Generator
from deeplandscape.train.latents import generate, sample_latents, step_generator


def test_fake_pairs_share_static_latents_and_differ_in_dynamic(tiny_cfg):
    G = Generator(tiny_cfg.model)
    lat = sample_latents(G, 5, 2, 32, 0.9, torch.Generator().manual_seed(0))
    b = 5
    # What G receives per frame (frames of a sample are adjacent).
    z_st_frames = lat.z_st.repeat_interleave(2, 0).view(b, 2, -1)
    assert torch.equal(z_st_frames[:, 0], z_st_frames[:, 1])
    assert (lat.z_dyn[:, 0] - lat.z_dyn[:, 1]).abs().min() > 0
    for s_st, s_dyn in zip(lat.S_st, lat.S_dyn):
        assert s_st.shape[1] == 1 and s_dyn.shape[1] == 2  # one S_st per sample, one S_dyn per frame
        assert not torch.equal(s_dyn[:, 0], s_dyn[:, 1])
    # Mixing second latent: static part shared too, cut-over level shared by both frames.
    assert lat.mix_z_st.shape == lat.z_st.shape and lat.mix_z_dyn.shape == lat.z_dyn.shape


def test_fake_pair_frames_differ_only_through_dynamic_inputs(tiny_cfg):
    """With z_dyn and S_dyn equal across frames, both frames must be the same image."""
    G = Generator(tiny_cfg.model)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith(".scale"):
                p.normal_()
    lat = sample_latents(G, 3, 2, 16, 0.9, torch.Generator().manual_seed(1))
    frames = generate(G, lat, 16, 1.0)
    assert (frames[:, 0] - frames[:, 1]).abs().mean() > 1e-3
    lat.z_dyn[:, 1] = lat.z_dyn[:, 0]
    lat.mix_z_dyn[:, 1] = lat.mix_z_dyn[:, 0]
    lat.S_dyn = [torch.stack([s[:, 0], s[:, 0]], dim=1) for s in lat.S_dyn]
    frames = generate(G, lat, 16, 1.0)
    torch.testing.assert_close(frames[:, 0], frames[:, 1])


def test_crop_pairs_come_from_one_frame_at_different_places(synth_data):
    data = TrainingData.load(str(synth_data / "photos"), str(synth_data / "videos"), 64)
    crops = data.sample_crop_pairs(32, 16, 0.5, torch.Generator().manual_seed(3))
    assert crops.images.shape == (32, 2, 3, 16, 16)
    assert crops.images.min() >= -1 and crops.images.max() <= 1
    boxes = crops.boxes
    assert (boxes[:, 0, 2] == 32).all() and (boxes[:, 1, 2] == 32).all()  # side = 0.5 * 64
    assert ((boxes[:, 0, :2] != boxes[:, 1, :2]).any(dim=1)).all(), "two crops at the same place"
    # Recompute each crop from the recorded frame and box: both come from that one frame.
    for i in range(32):
        v, f = crops.frames[i].tolist()
        frame = data.videos[v][f].float().div(127.5).sub(1)
        for k in range(2):
            top, left, side = boxes[i, k].tolist()
            ref = torch.nn.functional.interpolate(frame[None, :, top:top + side, left:left + side], size=16, mode="area")[0]
            torch.testing.assert_close(crops.images[i, k], ref)


def test_real_pairs_are_two_distinct_frames_of_one_video(synth_data):
    data = TrainingData.load(str(synth_data / "photos"), str(synth_data / "videos"), 64)
    pairs = data.sample_pairs(16, 64, torch.Generator().manual_seed(4))
    assert pairs.shape == (16, 2, 3, 64, 64)
    frames = [(v.float().div(127.5).sub(1)) for v in data.videos]
    for pair in pairs:
        hits = set()
        for k in range(2):
            img = pair[k]
            for vi, vid in enumerate(frames):
                for fi, fr in enumerate(vid):
                    if torch.allclose(img, fr) or torch.allclose(img, fr.flip(-1)):
                        hits.add((k, vi, fi))
        videos = {(k, vi) for k, vi, _ in hits}
        assert {vi for _, vi in videos} and len({vi for _, vi in videos}) == 1, "frames from different videos"
        assert {fi for k, _, fi in hits if k == 0} != {fi for k, _, fi in hits if k == 1}


def test_step_generators_agree_across_ranks_only_for_shared_streams():
    a = torch.rand(4, generator=step_generator(0, 10, "shared"))
    assert torch.equal(a, torch.rand(4, generator=step_generator(0, 10, "shared")))
    assert not torch.equal(torch.rand(4, generator=step_generator(0, 10, "data", 0)),
                           torch.rand(4, generator=step_generator(0, 10, "data", 1)))
    assert not torch.equal(a, torch.rand(4, generator=step_generator(0, 11, "shared")))
