"""Shared by the sweep tests: stand-in weight files (tests/conftest.py) and the
sweep scripts in tune/, loaded as modules so their `main` runs on the session's Ray."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def sweep_env(eval_env, image_stand_ins, tmp_path, monkeypatch):
    """Inception and VGG16 stand-ins (tests/conftest.py: they compare trials with each other, they
    are not the published networks), an empty statistics cache, cwd in tmp_path."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def load_script(name: str):
    """tune/NAME.py as a module (tune/ is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"tune_script_{name}", REPO / "tune" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
