"""The RRDB part of the authors' super-resolution file (`superres/weights/G.pth`) as our `RRDBNet`.

Their file is a plain state dict (loaded with `weights_only=True`) of `RRDBNetSEG`: `net.*` is
ESRGAN's RRDBNet (conv_first, RRDB_trunk, trunk_conv, upconv1/2, HRconv, conv_last), whose
names ours shares; the rest (`binary_mask.*`, a whole ADE20K network; `conv_ref`, `enhancement1/2`,
`linear_gdf*`, `binary_mask_upconv`) is their fusion with the high-resolution photo, which this
project does with its guided-filter blend instead (deeplandscape/superres/blend.py), so it is
left out. Their forward pass stops before `net.conv_last` and fuses the 64 feature maps; ours
runs the RRDBNet to its RGB output.
"""

from __future__ import annotations

import torch

from deeplandscape.authors.generator import AuthorsFileError, read_state_dict


def read_superres(path: str) -> tuple[dict[str, torch.Tensor], tuple[int, int, int], int]:
    """(RRDBNet tensors, (nf, nb, gc), number of their tensors left out) from their SR file."""
    state = read_state_dict(path)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    net = {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    if "conv_first.weight" not in net or "RRDB_trunk.0.RDB1.conv1.weight" not in net:
        raise AuthorsFileError(f"{path}: no net.conv_first / net.RRDB_trunk tensors: not the authors' RRDBNetSEG "
                               f"super-resolution file")
    nf = int(net["conv_first.weight"].shape[0])
    nb = len({k.split(".")[1] for k in net if k.startswith("RRDB_trunk.")})
    gc = int(net["RRDB_trunk.0.RDB1.conv1.weight"].shape[0])
    return net, (nf, nb, gc), len(state) - len(net)
