"""What the discriminators are shown: fake pairs, real pairs and crop-sampled pairs."""

from __future__ import annotations

import torch

from deeplandscape.data.training import TrainingData, Windows
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


L = 64  # frame side of the coordinate data


def coordinate_data(windows: Windows = Windows()) -> TrainingData:
    """Frames whose pixels say where they are: channel 0 = x, channel 1 = y, channel 2 =
    16 * video + frame (photos: 200 + photo). A window at full size shows its place, flip and source."""
    y, x = torch.meshgrid(torch.arange(L), torch.arange(L), indexing="ij")

    def image(tag: int) -> torch.Tensor:
        return torch.stack([x, y, torch.full_like(x, tag)]).to(torch.uint8)  # [3, L, L]

    videos = [torch.stack([image(16 * v + f) for f in range(6)]) for v in range(4)]
    return TrainingData(torch.stack([image(200 + i) for i in range(8)]), videos, windows)


def decode(img: torch.Tensor) -> tuple[int, int, int, bool, int]:
    """(top, left, side, flipped, tag) of a window at full size: [3, s, s] in [-1, 1]."""
    v = img.add(1).mul(127.5).round().long()
    xs, ys = v[0, 0], v[1, :, 0]
    flipped = bool(xs[0] > xs[-1])
    return int(ys[0]), int(xs.min()), len(xs), flipped, int(v[2, 0, 0])


def test_every_real_input_is_a_window_at_one_scale():
    """Photos, real pairs and crop pairs: windows of 0.75 of the frame side (48 of 64 px), so
    D_pair sees crop pairs at the zoom of real pairs; flips alike within a pair."""
    data = coordinate_data()
    side = 48
    gen = torch.Generator().manual_seed(3)
    photos = [decode(x) for x in data.sample_images(32, side, gen)]
    assert {p[2] for p in photos} == {side} and all(200 <= p[4] < 208 for p in photos)
    assert len({(p[0], p[1]) for p in photos}) > 8 and {p[3] for p in photos} == {True, False}  # windows move, flip

    pairs = data.sample_pairs(32, side, gen)
    assert pairs.shape == (32, 2, 3, side, side)
    for a, b in (map(decode, pair) for pair in pairs):
        assert a[:4] == b[:4]  # one window, one flip for both frames
        assert a[4] // 16 == b[4] // 16 and a[4] != b[4]  # two distinct frames of one video
    crops = data.sample_crop_pairs(32, side, gen)
    flips = set()
    for (a, b), box in zip((map(decode, pair) for pair in crops.images), crops.boxes.tolist()):
        assert a[4] == b[4] and a[2] == b[2] == side  # one frame, the real pairs' scale
        assert (a[0], a[1]) != (b[0], b[1]) and a[3] == b[3]  # two places, one flip
        assert [[a[0], a[1], side], [b[0], b[1], side]] == box
        flips.add(a[3])
    assert flips == {True, False}


def test_windows_are_resized_to_the_phase_resolution():
    data = coordinate_data()
    gen = torch.Generator().manual_seed(4)
    assert data.sample_images(8, 16, gen).shape == (8, 3, 16, 16)
    assert data.sample_pairs(8, 16, gen).shape == (8, 2, 3, 16, 16)
    assert data.sample_crop_pairs(8, 16, gen).images.shape == (8, 2, 3, 16, 16)


def test_runs_made_before_windows_keep_their_sampling():
    """train.window = 0 (older runs): whole frames for photos and pairs; crops of crop_scale, unflipped."""
    from deeplandscape.config import load_config

    legacy = Windows.of(load_config("tiny", {"train.window": "0", "train.crop_scale": "0.5"}).train)
    assert legacy == Windows(1.0, 0.5, False)
    data = coordinate_data(legacy)
    gen = torch.Generator().manual_seed(5)
    for x in data.sample_images(8, L, gen):
        assert decode(x)[:3] == (0, 0, L)
    for pair in data.sample_pairs(8, L, gen):
        assert [decode(f)[:3] for f in pair] == [(0, 0, L), (0, 0, L)]
    crops = data.sample_crop_pairs(16, 32, gen)
    assert (crops.boxes[:, :, 2] == 32).all()
    x = crops.images.add(1).mul(127.5)
    assert (x[:, :, 0, 0, 0] < x[:, :, 0, 0, -1]).all()  # never flipped


def test_step_generators_agree_across_ranks_only_for_shared_streams():
    a = torch.rand(4, generator=step_generator(0, 10, "shared"))
    assert torch.equal(a, torch.rand(4, generator=step_generator(0, 10, "shared")))
    assert not torch.equal(torch.rand(4, generator=step_generator(0, 10, "data", 0)),
                           torch.rand(4, generator=step_generator(0, 10, "data", 1)))
    assert not torch.equal(a, torch.rand(4, generator=step_generator(0, 11, "shared")))
