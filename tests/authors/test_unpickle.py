"""Tensors out of whole pickled modules, with nothing of the file run."""

from __future__ import annotations

import os
import sys
import textwrap

import pytest
import torch
from torch import nn

from deeplandscape.authors.unpickle import UnsafeFileError, read_module_tensors


def test_reads_a_module_whose_classes_do_not_exist_here(tmp_path, monkeypatch):
    """Their encoder file names `inference.encoders.*` classes: we read it without them."""
    package = tmp_path / "src" / "authors_encoders_stand_in.py"
    package.parent.mkdir()
    package.write_text(textwrap.dedent("""
        import torch
        from torch import nn

        class Head(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Sequential(nn.Linear(6, 4), nn.LayerNorm(4), nn.LeakyReLU(0.2), nn.Linear(4, 8))
                self.bn = nn.BatchNorm1d(6)
                self.mean = torch.zeros(3)  # a plain attribute, not a buffer (their ImageNetRenormalize)
    """))
    monkeypatch.syspath_prepend(str(package.parent))
    import authors_encoders_stand_in as theirs

    model = theirs.Head()
    model.bn.running_mean += 1.5
    torch.save(model, tmp_path / "best_model.pth")
    expected = model.state_dict()
    del sys.modules["authors_encoders_stand_in"]
    package.unlink()  # their code is gone: only the file's data is left

    with pytest.raises(ModuleNotFoundError):  # what torch.load itself needs: their code
        torch.load(tmp_path / "best_model.pth", weights_only=False)
    tensors, classes = read_module_tensors(str(tmp_path / "best_model.pth"))
    assert tensors.keys() == expected.keys()
    for k, v in expected.items():
        assert torch.equal(tensors[k], v), k
    assert classes[""] == "authors_encoders_stand_in.Head" and classes["fc.1"] == "torch.nn.modules.normalization.LayerNorm"


class Payload:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_refuses_a_file_that_would_run_a_command_and_runs_nothing(tmp_path):
    marker = tmp_path / "ran"
    module = nn.Linear(2, 2)
    module.payload = Payload(f"touch {marker}")  # inside the module, as an attribute
    torch.save(module, tmp_path / "module.pth")
    torch.save({"weight": torch.ones(2), "x": Payload(f"touch {marker}")}, tmp_path / "dict.pth")
    for name in ("module.pth", "dict.pth"):
        with pytest.raises(UnsafeFileError, match=rf"{name}: the file calls (posix|os)\.system\(\.\.\.\)"):
            read_module_tensors(str(tmp_path / name))
    assert not marker.exists()
    torch.load(tmp_path / "dict.pth", weights_only=False)  # the same file through plain pickle does run it
    assert marker.exists()
