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
from deeplandscape.animate.homography import CLOCK_DIRECTIONS


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
    """`--directions`: a count ("5") or a list of clock directions ("3h,9h")."""
    if value.strip().isdigit():
        return int(value)
    names = [d.strip() for d in value.split(",") if d.strip()]
    unknown = [d for d in names if d not in CLOCK_DIRECTIONS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"expected a count or clock directions ({', '.join(CLOCK_DIRECTIONS)}), "
                                         f"got {value!r}")
    return names


def split_directions(value: int | list[str]) -> tuple[int, list[str] | None]:
    """`--directions` -> (count, explicit list or None), as `pick_directions` takes them."""
    return (value, None) if isinstance(value, int) else (len(value), value)
