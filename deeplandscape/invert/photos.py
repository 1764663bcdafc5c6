"""Reading a user's photo (and its mask) into the model's square input.

Photos come in every shape a camera or an editor makes: EXIF-rotated JPEGs, PNGs with alpha,
16-bit PNGs, grayscale, CMYK, WebP, animated GIFs. `decode_photo` turns each into an upright
8-bit RGB array or raises `PhotoError` saying what is wrong with the file.

Non-square photos (`invert.fit`):
- "crop" (default): the centre square, as the authors' code does. The output is square.
- "pad": the photo is reflect-padded to a square; outputs are cropped back to the photo's
  own aspect ratio, so a portrait photo gives a portrait video.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from deeplandscape import storage
from deeplandscape.data.synth import MASK_SUFFIX

MAX_PIXELS = 80_000_000  # decompression-bomb guard: ~9000 x 9000; larger files are refused


class PhotoError(ValueError):
    """A photo cannot be used; the message names the file and what is wrong."""


def image_error(e: Exception) -> str:
    """PIL's error as a reason a person can read (its "cannot identify image file" names the
    in-memory buffer, `<_io.BytesIO object at 0x...>`, not the file)."""
    if isinstance(e, UnidentifiedImageError):
        return "not a known image format"
    return f"{type(e).__name__}: {e}"


def _to_rgb8(im: Image.Image) -> Image.Image:
    """Any PIL mode -> 8-bit RGB. Alpha is composited on white; 16-bit is scaled, not clipped."""
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or arr.max() > 255 else 255.0
        return Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8)).convert("RGB")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")  # L, P, CMYK, YCbCr, RGB


def decode_photo(data: bytes, name: str, min_side: int = 1) -> np.ndarray:
    """Encoded bytes -> upright RGB uint8 [H, W, 3]. Animated files give their first frame."""
    if not data:
        raise PhotoError(f"{name}: empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise PhotoError(f"{name}: {w}x{h} is {w * h / 1e6:.0f} megapixels, more than the "
                                     f"{MAX_PIXELS / 1e6:.0f} allowed (decompression-bomb guard)")
                im.seek(0)
                im = ImageOps.exif_transpose(im)  # camera rotation -> upright pixels
                arr = np.asarray(_to_rgb8(im))
    except PhotoError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise PhotoError(f"{name}: too many pixels (decompression-bomb guard): {e}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as e:  # PIL's ways of saying "not an image"
        raise PhotoError(f"{name}: not a readable image ({image_error(e)})") from None
    if min(arr.shape[:2]) < min_side:
        raise PhotoError(f"{name}: {arr.shape[1]}x{arr.shape[0]} is smaller than the model's "
                         f"{min_side} px on its short side")
    return arr


@dataclass
class Framing:
    """Where the photo sits in the square the model sees, as fractions of the square's side."""

    top: float = 0.0
    left: float = 0.0
    height: float = 1.0
    width: float = 1.0

    def crop(self, frames: np.ndarray) -> np.ndarray:
        """Cut the photo's region out of square frames [..., S, S, C] (a no-op for "crop")."""
        s = frames.shape[-2]
        t, l = round(self.top * s), round(self.left * s)
        h, w = max(1, round(self.height * s)), max(1, round(self.width * s))
        h, w = h - h % 2, w - w % 2  # H.264 with yuv420p wants even sides
        return frames[..., t : t + h, l : l + w, :]


def fit_square(img: np.ndarray, size: int, fit: str = "crop") -> tuple[np.ndarray, Framing]:
    """[H, W, C] uint8 -> ([size, size, C] uint8, where the photo is in it)."""
    h, w = img.shape[:2]
    if fit == "crop":
        s = min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        square, framing = img[top : top + s, left : left + s], Framing()
    elif fit == "pad":
        s = max(h, w)
        pt, pl = (s - h) // 2, (s - w) // 2
        square = np.pad(img, ((pt, s - h - pt), (pl, s - w - pl), (0, 0)), mode="reflect" if min(h, w) > 1 else "edge")
        framing = Framing(pt / s, pl / s, h / s, w / s)
    else:
        raise ValueError(f"fit must be 'crop' or 'pad', got {fit!r}")
    pil = Image.fromarray(np.ascontiguousarray(square).squeeze(-1) if square.shape[-1] == 1 else np.ascontiguousarray(square))
    if pil.size != (size, size):
        pil = pil.resize((size, size), Image.Resampling.LANCZOS if pil.size[0] > size else Image.Resampling.BICUBIC)
    out = np.asarray(pil)
    return (out[..., None] if out.ndim == 2 else out), framing


@dataclass
class Framed:
    """A decoded photo made ready for the model (no model needed): see `frame`."""

    square: np.ndarray  # [R, R, 3] uint8, what the model reconstructs
    framing: Framing  # where the photo is in the square
    dynamic: np.ndarray | None  # [R, R] bool, sky + water from the mask file; None without one
    hires: np.ndarray | None  # [H, H, 3] uint8, the same square at the super-resolution size; None if not asked
    hires_dynamic: np.ndarray | None  # [H, H] bool, the mask file at that size; None without either


def frame(uri: str, img: np.ndarray, mask: np.ndarray | None, resolution: int, fit: str,
          hires_size: int = 0) -> Framed:
    """`img` [H, W, 3] uint8 and its mask [H, W] bool (or None) -> the model's square, its
    dynamic mask and, with `hires_size`, the same square (and mask) at that side for super-resolution."""
    square, framing = fit_square(img, resolution, fit)
    dynamic = hires_dynamic = None
    if mask is not None:
        if mask.shape != img.shape[:2]:
            raise PhotoError(f"{uri}: its mask is {mask.shape[1]}x{mask.shape[0]}, the photo "
                             f"{img.shape[1]}x{img.shape[0]}")
        mask8 = mask[..., None].astype(np.uint8) * 255
        dynamic = fit_square(mask8, resolution, fit)[0][..., 0] > 127
        if hires_size:
            hires_dynamic = fit_square(mask8, hires_size, fit)[0][..., 0] > 127
    hires = fit_square(img, hires_size, fit)[0] if hires_size else None
    return Framed(square, framing, dynamic, hires, hires_dynamic)


def mask_uri_for(uri: str) -> str:
    """The mask next to a photo: same name, `.mask.png` suffix (255 = dynamic: sky, water)."""
    stem = uri.rsplit(".", 1)[0] if "." in uri.rsplit("/", 1)[-1] else uri
    return stem + MASK_SUFFIX


def decode_mask(data: bytes, name: str) -> np.ndarray:
    """A mask image -> bool [H, W], True on dynamic pixels (any value above half)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(ImageOps.exif_transpose(im).convert("L"))
    except (OSError, ValueError, SyntaxError) as e:
        raise PhotoError(f"{name}: not a readable mask image ({e})") from None
    return arr > 127


def load_mask_next_to(uri: str) -> np.ndarray | None:
    """The photo's mask file if there is one, else None."""
    mask_uri = mask_uri_for(uri)
    if not storage.exists(mask_uri):
        return None
    return decode_mask(storage.read_bytes(mask_uri), mask_uri)


def to_model_input(square: np.ndarray) -> torch.Tensor:
    """[S, S, 3] uint8 -> [3, S, S] float in [-1, 1]."""
    return torch.from_numpy(np.array(square)).permute(2, 0, 1).float().div(127.5).sub(1)
