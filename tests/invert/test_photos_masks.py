"""Reading users' photos and masks: every odd file either works right or fails clearly."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from deeplandscape.invert.masks import Segmenter, horizon_from_sky, level_masks, sky_from_dynamic
from deeplandscape.invert.photos import PhotoError, decode_photo, fit_square


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def gradient(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), np.full_like(x, 90)], -1).astype(np.uint8)


def test_exif_rotated_photo_comes_out_upright():
    upright = gradient(40, 60)  # landscape: wider than tall, red grows to the right
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)  # as the camera wrote it: 40 wide, 60 tall
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = encode(stored, "JPEG", quality=95, exif=exif.tobytes())
    out = decode_photo(data, "cam.jpg")
    assert out.shape == (40, 60, 3)
    assert np.abs(out.astype(int) - upright.astype(int)).mean() < 6


@pytest.mark.parametrize("kind", ["rgba", "la", "gray", "cmyk", "p", "i16", "webp", "gif"])
def test_odd_modes_become_8bit_rgb(kind):
    base = Image.fromarray(gradient(32, 48))
    if kind == "rgba":
        im = base.convert("RGBA")
        im.putalpha(128)
        data = encode(im, "PNG")
    elif kind == "la":
        data = encode(base.convert("LA"), "PNG")
    elif kind == "gray":
        data = encode(base.convert("L"), "JPEG")
    elif kind == "cmyk":
        data = encode(base.convert("CMYK"), "JPEG")
    elif kind == "p":
        data = encode(base.convert("P"), "PNG")
    elif kind == "i16":  # 16-bit PNG: 0..65535 must map to 0..255, not clip to white
        ramp = (np.linspace(0, 65535, 48)[None].repeat(32, 0)).astype(np.uint16)
        data = encode(Image.fromarray(ramp), "PNG")
    elif kind == "webp":
        data = encode(base, "WEBP", quality=90)
    else:  # animated GIF: the first frame
        frames = [base.convert("P"), Image.fromarray(255 - gradient(32, 48)).convert("P")]
        data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    out = decode_photo(data, f"x.{kind}")
    assert out.dtype == np.uint8 and out.shape == (32, 48, 3)
    if kind == "i16":
        assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255 and 100 < out[0, 24, 0] < 160
    if kind == "rgba":  # half-transparent over white: brighter than the opaque colours
        assert out.astype(int).mean() > np.asarray(base).astype(int).mean() + 30


@pytest.mark.parametrize("data, needle", [
    (b"", "empty file"),
    (b"this is a text file, not a jpeg\n", "not a readable image"),
    ("truncated", "not a readable image"),
])
def test_bad_files_raise_photo_error_naming_the_file(data, needle):
    if data == "truncated":
        data = encode(Image.fromarray(gradient(64, 64)), "JPEG")[:200]
    with pytest.raises(PhotoError, match=needle) as e:
        decode_photo(data, "bucket/odd name é.jpg")
    assert "odd name é.jpg" in str(e.value)


def test_too_small_and_too_large_photos_are_refused(monkeypatch):
    small = encode(Image.fromarray(gradient(16, 20)), "PNG")
    with pytest.raises(PhotoError, match="smaller than the model's 32 px"):
        decode_photo(small, "tiny.png", min_side=32)
    import deeplandscape.invert.photos as photos

    monkeypatch.setattr(photos, "MAX_PIXELS", 1000)  # the guard, without writing a huge file
    with pytest.raises(PhotoError, match="decompression-bomb"):
        decode_photo(encode(Image.fromarray(gradient(40, 40)), "PNG"), "bomb.png")


def test_fit_crop_and_pad_keep_the_photo_shape_recoverable():
    portrait = gradient(60, 30)
    sq, framing = fit_square(portrait, 32, "crop")
    assert sq.shape == (32, 32, 3) and framing.crop(sq).shape == (32, 32, 3)
    sq, framing = fit_square(portrait, 32, "pad")
    region = framing.crop(sq)
    assert sq.shape == (32, 32, 3)
    assert region.shape[0] == 32 and region.shape[1] == 16  # portrait stays portrait (even sides)
    # the photo's own pixels are in the region: its mean colour matches the input's
    assert np.abs(region.reshape(-1, 3).mean(0) - portrait.reshape(-1, 3).mean(0)).max() < 12


def test_sky_is_the_dynamic_region_touching_the_top_and_sets_the_horizon():
    dynamic = np.zeros((32, 32), bool)
    dynamic[:10] = True  # sky
    dynamic[24:] = True  # water, not connected to the sky
    sky = sky_from_dynamic(dynamic)
    assert sky[:10].all() and not sky[10:].any()
    assert horizon_from_sky(sky, margin=0.05) == pytest.approx(10 / 32 + 0.05)
    assert horizon_from_sky(np.zeros((8, 8), bool), 0.05) == 0.5


def test_level_masks_follow_the_majority_of_covered_pixels():
    d = torch.zeros(1, 1, 32, 32)
    d[..., :16, :] = 1
    masks = level_masks(d, 32)
    assert [m.shape[-1] for m in masks] == [4, 8, 16, 32]
    assert masks[0][0, 0, :2].all() and not masks[0][0, 0, 2:].any()


def test_segmenter_from_torchscript_gives_dynamic_and_sky(tmp_path):
    class BlueIsSky(torch.nn.Module):  # 3 classes: 0 ground, 1 water (unused), 2 sky where blue dominates
        def forward(self, x):
            blue = x[:, 2:3] - x[:, :1]
            return torch.cat([-blue, torch.full_like(blue, -9.0), blue], dim=1)[..., ::2, ::2]

    path = tmp_path / "seg.pt"
    torch.jit.script(BlueIsSky()).save(str(path))
    img = np.zeros((32, 32, 3), np.uint8)
    img[:12] = (40, 80, 230)  # sky
    img[12:] = (90, 140, 40)  # grass
    dynamic, sky = Segmenter(str(path), "1,2", "2")(img)
    assert dynamic[:12].all() and not dynamic[13:].any()
    assert (sky == dynamic).all()
    with pytest.raises(ValueError, match="do not all exist"):
        Segmenter(str(path), "1,150", "2")(img)
    with pytest.raises(FileNotFoundError, match="segmentation model"):
        Segmenter(str(tmp_path / "missing.pt"), "2", "2")
