"""The authors' encoder (`encoders/<R>_resnet/models/best_model.pth`, a whole pickled
`inference.encoders.ResNetEncoder`) as our `Encoder` with `invert.encoder_head = "authors"`.

Theirs: a torchvision ResNet (`backbone`, ResNet-152 in the released files) whose layer1, layer3
and layer4 outputs are average-pooled and concatenated (256 + 1024 + 2048 = 3328 values), then
`backbone.fc` = Linear(3328, 2048), LayerNorm, LeakyReLU(0.2), Linear(2048, levels x 512): one w
per level of the generator, the same w for a level's two convolutions, no mean-w offset. Its
input is an image in [-1, 1], renormalised to ImageNet's mean and std as ours is. So:

    backbone.conv1.* / backbone.bn1.*    stem.0.* / stem.1.*
    backbone.layerK.*                    layerK.*
    backbone.fc.{0,1,3}.*                mlp.{0,1,3}.*

The file is read with `unpickle.read_module_tensors` (nothing in it runs).
"""

from __future__ import annotations

import torch

from deeplandscape.authors.generator import AuthorsFileError
from deeplandscape.authors.unpickle import read_module_tensors

# (block kind, blocks per layer) -> torchvision name
RESNETS = {("basic", (2, 2, 2, 2)): "resnet18", ("basic", (3, 4, 6, 3)): "resnet34",
           ("bottleneck", (3, 4, 6, 3)): "resnet50", ("bottleneck", (3, 4, 23, 3)): "resnet101",
           ("bottleneck", (3, 8, 36, 3)): "resnet152"}


def our_key(key: str) -> str | None:
    if key.startswith("backbone.conv1."):
        return "stem.0." + key.removeprefix("backbone.conv1.")
    if key.startswith("backbone.bn1."):
        return "stem.1." + key.removeprefix("backbone.bn1.")
    if key.startswith("backbone.layer"):
        return key.removeprefix("backbone.")
    if key.startswith("backbone.fc."):
        return "mlp." + key.removeprefix("backbone.fc.")
    return None


def read_encoder(path: str, w_dim: int, levels: int) -> tuple[dict[str, torch.Tensor], str, int]:
    """(our Encoder's tensors, backbone name, hidden width) from their encoder file."""
    tensors, classes = read_module_tensors(path)
    unknown = [k for k in tensors if our_key(k) is None]
    if unknown or "backbone.fc.3.weight" not in tensors:
        what = f"unexpected key {unknown[0]!r}" if unknown else "no backbone.fc.3.weight (their encoder head)"
        raise AuthorsFileError(f"{path}: not the authors' ResNetEncoder ({classes.get('', '?')}): {what}")
    kind = "bottleneck" if "backbone.layer1.0.conv3.weight" in tensors else "basic"
    counts = tuple(len({k.split(".")[2] for k in tensors if k.startswith(f"backbone.layer{i}.")}) for i in range(1, 5))
    backbone = RESNETS.get((kind, counts))
    if backbone is None:
        raise AuthorsFileError(f"{path}: a ResNet with {kind} blocks {counts} is not one torchvision has")
    hidden, outputs = int(tensors["backbone.fc.0.weight"].shape[0]), int(tensors["backbone.fc.3.weight"].shape[0])
    if outputs != levels * w_dim:
        raise AuthorsFileError(f"{path}: the encoder predicts {outputs // w_dim} styles of {w_dim}, the generator "
                               f"at this resolution has {levels} levels (an encoder of the other resolution?)")
    return {our_key(k): v for k, v in tensors.items()}, backbone, hidden
