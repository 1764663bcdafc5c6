"""Does deeplandscape/invert/ade20k.py compute what MIT CSAIL's own code computes?

Needs the `mit-semseg` package importable (not a dependency of this project: it pulls in the
GUI OpenCV), e.g. `pip install --no-deps --target /tmp/semseg mit-semseg yacs`, then

    PYTHONPATH=/tmp/semseg .venv/bin/python bench/ade20k_check.py

Our network gets random weights (BN statistics included), its two state dicts are written as
their `encoder_epoch_20.pth` / `decoder_epoch_20.pth`, their ModelBuilder loads them, and both
segment the same images: prints the largest difference of the class probabilities and the share
of pixels whose argmax class differs.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch
import torch.nn.functional as F

from deeplandscape.invert.ade20k import BN_BOOKKEEPING, INPUT_SIZE, ADE20KSegmenter, load_part


def main() -> int:
    try:
        from mit_semseg.models import ModelBuilder
    except ImportError:
        print("mit_semseg is not importable: see this script's docstring", file=sys.stderr)
        return 2
    torch.manual_seed(0)
    ours = ADE20KSegmenter()
    with torch.no_grad():
        for m in ours.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    ours.eval()
    with tempfile.TemporaryDirectory() as d:
        enc, dec = Path(d) / "encoder_epoch_20.pth", Path(d) / "decoder_epoch_20.pth"
        torch.save(ours.encoder.state_dict(), enc)
        torch.save(ours.decoder.state_dict(), dec)
        their_enc = ModelBuilder.build_encoder(arch="resnet50dilated", fc_dim=2048, weights=str(enc))
        their_dec = ModelBuilder.build_decoder(arch="ppm_deepsup", fc_dim=2048, num_class=150, weights=str(dec),
                                               use_softmax=True)
    their_enc.eval(), their_dec.eval()
    for name, mine, theirs in (("encoder", ours.encoder, their_enc), ("decoder", ours.decoder, their_dec)):
        a = {k: v for k, v in mine.state_dict().items() if not k.endswith(BN_BOOKKEEPING)}
        b = {k: v for k, v in theirs.state_dict().items() if not k.endswith(BN_BOOKKEEPING)}
        same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        print(f"{name}: {len(a)} tensors, every key and value loaded into theirs: {same}")
    # And their files (SyncBN's bookkeeping included) load into ours, key for key.
    with tempfile.TemporaryDirectory() as d:
        again = ADE20KSegmenter()
        for part, theirs, name in ((again.encoder, their_enc, "encoder"), (again.decoder, their_dec, "decoder")):
            torch.save(theirs.state_dict(), Path(d) / f"{name}_epoch_20.pth")
            load_part(part, torch.load(Path(d) / f"{name}_epoch_20.pth", weights_only=True), name)
        same = all(torch.equal(a, b) for a, b in zip(again.state_dict().values(), ours.state_dict().values()))
        print(f"their files saved by their code load into ours with the same values: {same}")
    x = torch.randn(2, 3, 300, 400)
    with torch.no_grad():
        mine = F.softmax(F.interpolate(ours(x), (300, 400), mode="bilinear", align_corners=False), dim=1)
        small = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        theirs = their_dec(their_enc(small, return_feature_maps=True), segSize=(300, 400))
    print(f"max |p_ours - p_theirs| = {(mine - theirs).abs().max().item():.2e}; argmax differs on "
          f"{(mine.argmax(1) != theirs.argmax(1)).float().mean().item():.2%} of pixels")
    return 0


if __name__ == "__main__":
    sys.exit(main())
