"""The guided-filter blend of paper 3.2 / Fig. 5 (deeplandscape/superres/blend.py)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d

from deeplandscape.data.synth import render_frame, sample_scene
from deeplandscape.superres.blend import guided_blend, guided_filter_params

SIZE = 256
LIGHT = torch.tensor([0.7, 0.6, 0.8]).view(1, 3, 1, 1)  # an evening-like lighting change made by the animation


def to_unit(x: torch.Tensor) -> torch.Tensor:
    return (x + 1) / 2


def high_freq(x: torch.Tensor) -> torch.Tensor:
    """Detail: the image minus its Gaussian blur (sigma 2 px), on [0, 1] intensities."""
    x = to_unit(x)
    return x - gaussian_blur2d(x, (9, 9), (2.0, 2.0))


def scene():
    """A synthetic landscape photo with sharp-edged 8 px texture on the static parts (rocks,
    fields), its sky + water mask, and a stand-in for an SR frame of its animation: 4x
    downsampled and bicubic-upsampled (blurred), relit, and with the clouds moved."""
    image, mask = render_frame(sample_scene(np.random.default_rng(3)), 0.0, SIZE)
    photo = torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1  # [3, S, S]
    dynamic = torch.from_numpy(mask)[None].float()  # [1, S, S]
    blocks = torch.rand(1, 1, SIZE // 8, SIZE // 8, generator=torch.Generator().manual_seed(0))
    texture = F.interpolate(blocks, scale_factor=8, mode="nearest")[0] - 0.5
    photo = (photo + 0.5 * texture * (1 - dynamic)).clamp(-1, 1)
    blurred = F.interpolate(F.interpolate(photo[None], scale_factor=0.25, mode="area"), size=(SIZE, SIZE),
                            mode="bicubic", align_corners=False).clamp(-1, 1)
    sr = to_unit(blurred) * LIGHT * 2 - 1
    sr = torch.where(dynamic.bool(), torch.roll(sr, 20, dims=-1), sr)  # the animated clouds have moved
    lit_photo = to_unit(photo[None]) * LIGHT * 2 - 1  # the ideal static part: the photo's detail, the new light
    return photo, dynamic, sr, lit_photo


def test_blend_keeps_the_photos_detail_on_static_parts_and_the_sr_frame_on_dynamic_ones():
    photo, dynamic, sr, lit_photo = scene()
    radius, subsample = guided_filter_params(SIZE, 32, 4)  # the defaults at 1024 px, scaled to 256 px
    out = guided_blend(sr, photo, dynamic, radius, 1e-4, subsample)
    assert out.shape == sr.shape and out.min() >= -1 and out.max() <= 1
    # 4 px away from the mask's boundary on either side.
    static = F.max_pool2d(dynamic[None], 9, 1, 4)[0, 0] == 0
    inner_dynamic = F.max_pool2d(1 - dynamic[None], 9, 1, 4)[0, 0] == 0

    def energy(x):
        return float(high_freq(x)[0][:, static].pow(2).mean())

    detail_out, detail_sr = energy(out) / energy(lit_photo), energy(sr) / energy(lit_photo)
    print(f"static high-frequency energy vs the relit photo: blend {detail_out:.2f}, SR frame {detail_sr:.2f}")
    assert detail_sr < 0.4  # the SR stand-in lost most of the detail ...
    assert detail_out > 0.65 and detail_out > 2 * detail_sr  # ... the blend brings it back from the photo
    err_out = float((out - lit_photo)[0][:, static].abs().mean())
    err_sr = float((sr - lit_photo)[0][:, static].abs().mean())
    assert err_out < 0.5 * err_sr, (err_out, err_sr)
    # The lighting is the SR frame's, not the photo's (paper: "retaining the lighting change").
    mean_out, mean_sr, mean_photo = (x[..., static].mean(-1).flatten() for x in (out[0], sr[0], photo))
    assert (mean_out - mean_sr).abs().max() < 0.01
    assert (mean_photo - mean_sr).abs().max() > 0.2
    # Sky and water are the SR frame's, moved clouds included.
    torch.testing.assert_close(out[0][:, inner_dynamic], sr[0][:, inner_dynamic], atol=1e-6, rtol=0)


def reference_guided_filter(guide: np.ndarray, p: np.ndarray, r: int, eps: float) -> np.ndarray:
    """He et al. 2010, colour guide, written out window by window: in each (2r+1)^2 window k
    fit p = a_k . I + b_k by ridge regression, then average a_k . I_i + b_k over the windows
    that contain pixel i. guide [3, H, W], p [C, H, W] on [0, 1]. Only pixels at least 2r from
    the border are valid (their windows never leave the image)."""
    _, H, W = guide.shape
    a = np.zeros((p.shape[0], 3, H, W))
    b = np.zeros((p.shape[0], H, W))
    for y in range(r, H - r):
        for x in range(r, W - r):
            I = guide[:, y - r : y + r + 1, x - r : x + r + 1].reshape(3, -1)  # noqa: E741
            mu = I.mean(axis=1)
            sigma = np.cov(I, bias=True) + eps * np.eye(3)
            for c in range(p.shape[0]):
                pc = p[c, y - r : y + r + 1, x - r : x + r + 1].reshape(-1)
                cov = (I * pc).mean(axis=1) - mu * pc.mean()
                a[c, :, y, x] = np.linalg.solve(sigma, cov)
                b[c, y, x] = pc.mean() - a[c, :, y, x] @ mu
    q = np.full(p.shape, np.nan)
    for y in range(2 * r, H - 2 * r):
        for x in range(2 * r, W - 2 * r):
            a_mean = a[:, :, y - r : y + r + 1, x - r : x + r + 1].mean(axis=(2, 3))  # [C, 3]
            b_mean = b[:, y - r : y + r + 1, x - r : x + r + 1].mean(axis=(1, 2))
            q[:, y, x] = a_mean @ guide[:, y, x] + b_mean
    return q


def test_the_static_part_is_the_colour_guided_filter_of_the_sr_frame():
    """Pins how blend.py calls kornia: window side 2r + 1, eps in squared [0, 1] units, colour guide."""
    gen = torch.Generator().manual_seed(1)
    photo = F.avg_pool2d(torch.rand(1, 3, 26, 26, generator=gen) * 2 - 1, 3, 1, 1)[0]  # [3, 26, 26], some smoothness
    sr = torch.rand(1, 3, 26, 26, generator=gen) * 2 - 1
    r, eps = 3, 1e-3
    out = guided_blend(sr, photo, torch.zeros(1, 26, 26), radius=r, eps=eps, subsample=1)
    ref = reference_guided_filter(to_unit(photo).double().numpy(), to_unit(sr[0]).double().numpy(), r, eps)
    valid = ~np.isnan(ref)
    assert valid.sum() == 3 * 14 * 14
    np.testing.assert_allclose(to_unit(out[0]).numpy()[valid], ref[valid], atol=2e-4)
