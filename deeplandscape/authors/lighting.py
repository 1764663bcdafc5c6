"""The authors' lighting network A (`encoders/<R>_mlp/models/best_model.pth`, a whole pickled
`inference.encoders.MLPApproximator`) as our `AuthorsLightingNet` (`invert.lighting_arch = "authors"`).

Theirs: `impl` = residual blocks `x + impl(x)` with impl = Linear, LayerNorm (no affine),
LeakyReLU(0.2), Linear, at width w + 4 (w, the target z_dyn, c), then `out` = Linear to w. Our
class has the same module names, so their tensors load as they are. Read with
`unpickle.read_module_tensors` (nothing in the file runs).
"""

from __future__ import annotations

import re

import torch

from deeplandscape.authors.generator import AuthorsFileError
from deeplandscape.authors.unpickle import read_module_tensors

KEY = re.compile(r"^(impl\.\d+\.impl\.[03]|out)\.(weight|bias)$")


def read_lighting(path: str, w_dim: int, z_dyn_dim: int) -> tuple[dict[str, torch.Tensor], int]:
    """(their A's tensors, number of blocks), checked against the generator's w and z_dyn sizes."""
    tensors, classes = read_module_tensors(path)
    unknown = [k for k in tensors if not KEY.match(k)]
    if unknown or "out.weight" not in tensors:
        what = f"unexpected key {unknown[0]!r}" if unknown else "no out.weight"
        raise AuthorsFileError(f"{path}: not the authors' MLPApproximator ({classes.get('', '?')}): {what}")
    out_dim, width = tensors["out.weight"].shape
    if (out_dim, width) != (w_dim, w_dim + z_dyn_dim + 1):
        raise AuthorsFileError(f"{path}: A maps {width} inputs to {out_dim}; the generator needs w ({w_dim}) + "
                               f"z_dyn ({z_dyn_dim}) + c (1) = {w_dim + z_dyn_dim + 1} inputs to {w_dim}")
    blocks = len({k.split(".")[1] for k in tensors if k.startswith("impl.")})
    return tensors, blocks
