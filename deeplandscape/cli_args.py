"""What every subcommand's arguments share: paths resolved on the driver, one-line path errors.

Ray workers do not run in the user's working directory, so a relative path typed in a shell
(`--images data/photos`) must become absolute before it reaches them. Each subcommand names
its path arguments once, next to its parser:

    path_args(p, inputs=("--images", "--videos"), outputs=("--run-dir",))

`resolve_path_args(args)` (called by `deeplandscape.cli.main` before the command runs) makes
every local one absolute against the working directory and stops, in one line naming the
flag, at an input that does not exist. `s3://` URIs are left as they are.
"""

from __future__ import annotations

import argparse

from deeplandscape import storage
from deeplandscape.animate.homography import CLOCK_DIRECTIONS, PixelSpeed, direction_motion, parse_speed, speed_factor


# Values of a path argument that name something built in rather than a file, by flag.
BUILT_IN_NAMES: dict[str, frozenset[str]] = {"--segmentation": frozenset({"ade20k", "none"})}


def path_args(p: argparse.ArgumentParser, inputs: tuple[str, ...] = (), outputs: tuple[str, ...] = ()) -> None:
    """Declare `p`'s path arguments by flag (`--run-dir`) or positional name (`PHOTOS`).

    inputs: must exist (a file or folder); outputs: made absolute only (created later, or
    inputs whose absence the command reports itself, such as one photo of many)."""
    p.set_defaults(_input_paths=inputs, _output_paths=outputs)


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_").lower()


def resolve_path_args(args: argparse.Namespace) -> None:
    """Make the declared paths of `args` absolute; FileNotFoundError for a missing input."""
    declared = [(flag, False) for flag in getattr(args, "_output_paths", ())]
    declared += [(flag, True) for flag in getattr(args, "_input_paths", ())]
    for flag, must_exist in declared:
        value = getattr(args, _dest(flag), None)
        items = value if isinstance(value, list) else [value]
        named = BUILT_IN_NAMES.get(flag, frozenset())
        for v in items:
            if must_exist and isinstance(v, str) and v and v not in named and not storage.is_remote(v) \
                    and not storage.exists(v):
                raise FileNotFoundError(f"{flag} {v}: no such file or folder")
        resolved = [storage.absolute(v) if isinstance(v, str) and v not in named else v for v in items]
        setattr(args, _dest(flag), resolved if isinstance(value, list) else resolved[0])


def directions_arg(value: str) -> int | list[str]:
    """`--directions`: a count ("5") or a list of clock directions and angles ("3h,9h,45deg")."""
    if value.strip().isdigit():
        return int(value)
    names = [d.strip() for d in value.split(",") if d.strip()]
    try:
        if names:
            return [direction_motion(d).name for d in names]  # angles by their canonical names: -90deg -> 270deg
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected a count, clock directions ({', '.join(CLOCK_DIRECTIONS)}) or "
                                     f"angles in degrees (0deg: right, 90deg: up), got {value!r}")


def speed_arg(value: str) -> float | PixelSpeed:
    """`--speed`: a factor (2.5, x2.5) or pixels per second at the output size (12px/s)."""
    try:
        return parse_speed(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def resolve_speed(speed: float | PixelSpeed, output_px: int, fps: float, log=print) -> float:
    """`--speed` as the factor the renderer takes; a speed in px/s is resolved for the output
    size and frame rate, and the factor it gives is said."""
    factor = speed_factor(speed, output_px, fps)
    if isinstance(speed, PixelSpeed):
        log(f"speed {speed} at {output_px} px and {fps:g} fps = x{factor:.3g} of the motions")
    return factor


def split_directions(value: int | list[str]) -> tuple[int, list[str] | None]:
    """`--directions` -> (count, explicit list or None), as `pick_directions` takes them."""
    return (value, None) if isinstance(value, int) else (len(value), value)
