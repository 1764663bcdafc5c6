"""The authors' StyleGAN-v1 generator (their `model.StyledGenerator`) in our `Generator`, exactly.

Their training checkpoint `NNNNNN.model` is a dict of state dicts: `generator` and `g_running`
(its moving average, what they sample from), the two discriminators, three Adam states and the
scalars `step`, `alpha`, `resolution`, `used_samples`, `iteration`. It loads with
`torch.load(weights_only=True)`. Their generator always holds nine levels, 4 to 1024 px; the
levels above the trained resolution are untrained.

How their tensors become ours (their equalised lr multiplies every weight by sqrt(2 / fan_in)):

    style.{2i+1}.linear.*               M.net.{2i+1}.*              as is (our M has He's gain too)
    progression.0.conv1.input           blocks.0.const              as is
    progression.n.conv1.1.conv.*        blocks.n.conv1.conv.*       as is (8-64 px: upsample, conv, blur)
    progression.n.conv1.0.{weight,bias} blocks.n.conv1.conv.*       fused upsample (128 px and up), below
    progression.n.conv2.conv.*          blocks.n.conv2.conv.*       as is
    progression.n.noise{1,2}.weight_orig    conv{1,2}.noise_st.scale    x sqrt(2 / C)
    progression.n.noise{1,2}2.weight_orig   conv{1,2}.noise_dyn.scale   x sqrt(2 / C)
    progression.n.adain{1,2}.style.linear.* conv{1,2}.adain.style.*     weight x sqrt(2): ours has gain 1
    to_rgb.n.conv.*                     blocks.n.to_rgb.*           weight x sqrt(2): ours has gain 1
    progression.n.conv1.{1,2}.weight(_flip)  (dropped: their blur's fixed [1,2,1] kernel, checked)
    levels above the imported resolution    (dropped)

Their fused upsample is a transposed convolution (stride 2, padding 1) with the 4x4 kernel made
by adding the four 2x2 shifts of the 3x3 kernel and dividing by 4. That is exactly a nearest x2
upsample followed by a 3x3 convolution (zero padding) with the kernel transposed (in <-> out),
flipped in both axes and divided by 4, which is what our upsampling StyledConv computes.
Their convolutions and blur pad with zeros: the imported config says `model.g_padding = "zeros"`.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass
from typing import Any, Callable

import torch

from deeplandscape.config import ModelConfig
from deeplandscape.nets.generator import Generator, level_of

G_KEYS = ("g_running", "generator")  # their EMA generator, then the trained one
BLUR_KERNEL = torch.tensor([1.0, 2.0, 1.0])[:, None] * torch.tensor([1.0, 2.0, 1.0])[None, :] / 16


class AuthorsFileError(ValueError):
    """A file that is not what the import expects; the message names the file and the first problem."""


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def read_state_dict(path: str) -> dict[str, Any]:
    """A file of theirs that holds tensors only (`weights_only=True`), checked to be a dict."""
    obj = _load_tensors(path)
    if not isinstance(obj, dict):
        raise AuthorsFileError(f"{path}: holds a {type(obj).__name__}, not a dict of tensors")
    return obj


def read_checkpoint(path: str) -> dict[str, Any]:
    """Their training checkpoint, tensors only (`weights_only=True`), checked to be one."""
    obj = _load_tensors(path)
    if not isinstance(obj, dict) or not any(k in obj for k in G_KEYS):
        keys = sorted(obj)[:8] if isinstance(obj, dict) else type(obj).__name__
        raise AuthorsFileError(f"{path}: not one of the authors' training checkpoints (a dict with "
                               f"'g_running' and 'generator'); it holds {keys}")
    for k in G_KEYS:
        if k in obj and not (isinstance(obj[k], dict) and all(isinstance(v, torch.Tensor) for v in obj[k].values())):
            raise AuthorsFileError(f"{path}: entry {k!r} is not a state dict of tensors")
    return obj


def _load_tensors(path: str) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as e:
        if "Unsupported global" in str(e):  # weights_only met a class: a whole pickled module
            raise AuthorsFileError(
                f"{path}: holds pickled code, not state dicts (the encoder or lighting file? pass it as "
                f"--encoder or --lighting)") from e
        raise AuthorsFileError(f"{path}: not a readable PyTorch checkpoint (truncated, or not a torch.save file)") \
            from e
    except Exception as e:  # noqa: BLE001 - torch's loaders raise many kinds on a damaged file
        detail = f": {first_line(e).split('. ')[0][:120]}" if isinstance(e, RuntimeError) else ""
        raise AuthorsFileError(f"{path}: not a readable PyTorch checkpoint (truncated, or not a torch.save file)"
                               f"{detail}") from e


@dataclass(frozen=True)
class Architecture:
    """What a file's generator is, read from its keys and shapes."""

    z_dim: int
    w_dim: int
    mapping_layers: int
    channels: tuple[int, ...]  # output channels of levels 4, 8, ... px
    separate_noise: bool
    trained_resolution: int | None  # the checkpoint's `resolution` (or 4 * 2^step), if stored

    @property
    def max_resolution(self) -> int:
        return 4 * 2 ** (len(self.channels) - 1)

    def channel_rule(self, path: str) -> tuple[int, int]:
        """(channel_base, channel_max) with min(max, base / r) = their channels at every level."""
        cmax = self.channels[0]
        base = max(c * 4 * 2**n for n, c in enumerate(self.channels) if c < cmax) if min(self.channels) < cmax \
            else cmax * self.max_resolution
        if any(min(cmax, base // (4 * 2**n)) != c for n, c in enumerate(self.channels)):
            raise AuthorsFileError(f"{path}: channel counts {list(self.channels)} (4 px up) do not follow "
                                   f"min(max, base / resolution); not a StyleGAN-v1 generator of the authors' shape")
        return base, cmax


def read_architecture(sd: dict[str, torch.Tensor], ckpt: dict[str, Any], path: str) -> Architecture:
    def need(key: str) -> torch.Tensor:
        if key not in sd:
            raise AuthorsFileError(f"{path}: missing key {key!r}: not the authors' StyledGenerator")
        return sd[key]

    style = sorted(int(k.split(".")[1]) for k in sd if k.startswith("style.") and k.endswith(".linear.weight_orig"))
    first = need("style.1.linear.weight_orig")
    levels = sorted({int(k.split(".")[2]) for k in sd if k.startswith("generator.progression.")})
    if not levels or levels != list(range(len(levels))):
        raise AuthorsFileError(f"{path}: generator levels {levels} are not 0, 1, 2, ...")
    channels = tuple(int(need(f"generator.progression.{n}.conv2.conv.weight_orig").shape[0]) for n in levels)
    trained = ckpt.get("resolution")
    if not isinstance(trained, int) and isinstance(ckpt.get("step"), int):
        trained = 4 * 2 ** ckpt["step"]
    return Architecture(z_dim=int(first.shape[1]), w_dim=int(first.shape[0]), mapping_layers=len(style),
                        channels=channels, separate_noise="generator.progression.0.noise12.weight_orig" in sd,
                        trained_resolution=trained if isinstance(trained, int) else None)


# --- the conversion rules ----------------------------------------------------------------------
Transform = Callable[[torch.Tensor], torch.Tensor]
SQRT2 = math.sqrt(2.0)


def _as_is(t: torch.Tensor) -> torch.Tensor:
    return t


def _unit_gain(t: torch.Tensor) -> torch.Tensor:
    """Their sqrt(2 / fan_in) on a layer ours scales by 1 / sqrt(fan_in) (styles, to-RGB)."""
    return t * SQRT2


def _noise_scale(t: torch.Tensor) -> torch.Tensor:
    """Their noise weight [1, C, 1, 1] is equalised too (fan_in = C); ours is the plain scale."""
    return t * math.sqrt(2.0 / t.shape[1])


def _fused_upsample(t: torch.Tensor) -> torch.Tensor:
    """Their fused kernel [in, out, 3, 3] -> our conv after a nearest upsample [out, in, 3, 3]."""
    return t.transpose(0, 1).flip(-1, -2) / 4


def conversion_rules(sd: dict[str, torch.Tensor], top: int, separate_noise: bool) -> tuple[
        list[tuple[str, str, Transform]], list[str], list[str]]:
    """([(their key, our key, transform)], [their blur kernels], [their keys of levels above top])."""
    rules: list[tuple[str, str, Transform]] = []
    blur: list[str] = []
    for i in sorted(int(k.split(".")[1]) for k in sd if k.startswith("style.") and k.endswith(".weight_orig")):
        rules += [(f"style.{i}.linear.weight_orig", f"M.net.{i}.weight", _as_is),
                  (f"style.{i}.linear.bias", f"M.net.{i}.bias", _as_is)]
    for n in range(top + 1):
        theirs, ours = f"generator.progression.{n}", f"blocks.{n}"
        if n == 0:
            rules.append((f"{theirs}.conv1.input", f"{ours}.const", _as_is))
        elif f"{theirs}.conv1.0.weight" in sd:  # fused upsample, then blur
            rules += [(f"{theirs}.conv1.0.weight", f"{ours}.conv1.conv.weight", _fused_upsample),
                      (f"{theirs}.conv1.0.bias", f"{ours}.conv1.conv.bias", _as_is)]
            blur += [f"{theirs}.conv1.1.weight", f"{theirs}.conv1.1.weight_flip"]
        else:  # nearest upsample, conv, blur
            rules += [(f"{theirs}.conv1.1.conv.weight_orig", f"{ours}.conv1.conv.weight", _as_is),
                      (f"{theirs}.conv1.1.conv.bias", f"{ours}.conv1.conv.bias", _as_is)]
            blur += [f"{theirs}.conv1.2.weight", f"{theirs}.conv1.2.weight_flip"]
        rules += [(f"{theirs}.conv2.conv.weight_orig", f"{ours}.conv2.conv.weight", _as_is),
                  (f"{theirs}.conv2.conv.bias", f"{ours}.conv2.conv.bias", _as_is)]
        for j in (1, 2):
            rules += [(f"{theirs}.noise{j}.weight_orig", f"{ours}.conv{j}.noise_st.scale", _noise_scale),
                      (f"{theirs}.adain{j}.style.linear.weight_orig", f"{ours}.conv{j}.adain.style.weight", _unit_gain),
                      (f"{theirs}.adain{j}.style.linear.bias", f"{ours}.conv{j}.adain.style.bias", _as_is)]
            if separate_noise:
                rules.append((f"{theirs}.noise{j}2.weight_orig", f"{ours}.conv{j}.noise_dyn.scale", _noise_scale))
        rules += [(f"generator.to_rgb.{n}.conv.weight_orig", f"{ours}.to_rgb.weight", _unit_gain),
                  (f"generator.to_rgb.{n}.conv.bias", f"{ours}.to_rgb.bias", _as_is)]
    above = tuple(f"generator.progression.{n}." for n in range(top + 1, 64)) + \
        tuple(f"generator.to_rgb.{n}." for n in range(top + 1, 64))
    return rules, blur, [k for k in sd if k.startswith(above)]


def model_config(arch: Architecture, resolution: int, base: ModelConfig, path: str) -> ModelConfig:
    """`base` (a preset's model section) with what the file says, at `resolution`."""
    level_of(resolution)  # a power of two >= 4
    if resolution > arch.max_resolution:
        raise AuthorsFileError(f"{path}: --resolution {resolution} is above the {arch.max_resolution} px the file holds")
    if arch.trained_resolution is not None and resolution > arch.trained_resolution:
        raise AuthorsFileError(f"{path}: --resolution {resolution} is above the {arch.trained_resolution} px this "
                               f"checkpoint was trained to (its levels above that are untrained)")
    channel_base, channel_max = arch.channel_rule(path)
    fields = {**base.__dict__, "resolution": resolution, "z_dim": arch.z_dim, "w_dim": arch.w_dim,
              "mapping_layers": arch.mapping_layers, "channel_base": channel_base, "channel_max": channel_max,
              "separate_noise": arch.separate_noise, "he_gain": True, "g_padding": "zeros"}
    return ModelConfig(**fields)


def convert_generator(sd: dict[str, torch.Tensor], cfg: ModelConfig, path: str) -> tuple[dict[str, torch.Tensor],
                                                                                         list[str]]:
    """Their StyledGenerator state dict -> (our Generator's state dict, their keys dropped).

    Every key of theirs is converted or dropped on purpose; a missing key, a key no rule knows
    or a shape that does not fit raises `AuthorsFileError` naming the file and the key."""
    top = level_of(cfg.resolution)
    rules, blur, above = conversion_rules(sd, top, cfg.separate_noise)
    target = Generator(cfg).state_dict()
    out: dict[str, torch.Tensor] = {}
    for theirs, ours, transform in rules:
        if theirs not in sd:
            raise AuthorsFileError(f"{path}: missing key {theirs!r}")
        value = transform(sd[theirs].detach().to(torch.float32))
        if ours not in target or tuple(value.shape) != tuple(target[ours].shape):
            want = tuple(target[ours].shape) if ours in target else "no such tensor"
            raise AuthorsFileError(f"{path}: key {theirs!r} has shape {tuple(sd[theirs].shape)}, which does not "
                                   f"fit {ours} {want}")
        out[ours] = value.contiguous()
    for key in blur:
        if key not in sd:
            raise AuthorsFileError(f"{path}: missing key {key!r}")
        kernel = sd[key]
        if kernel.shape[-2:] != (3, 3) or not torch.allclose(kernel.float(), BLUR_KERNEL.expand_as(kernel)):
            raise AuthorsFileError(f"{path}: blur kernel {key!r} is not StyleGAN's fixed [1, 2, 1] filter")
    known = {r[0] for r in rules} | set(blur) | set(above)
    unexpected = [k for k in sd if k not in known]
    if unexpected:
        raise AuthorsFileError(f"{path}: unexpected key {unexpected[0]!r} (and {len(unexpected) - 1} more)"
                               if len(unexpected) > 1 else f"{path}: unexpected key {unexpected[0]!r}")
    missing = [k for k in target if k not in out]
    if missing:
        raise AuthorsFileError(f"{path}: nothing in the file for our {missing[0]!r}")
    return out, blur + above
