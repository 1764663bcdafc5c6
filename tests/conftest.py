"""Shared fixtures: the tiny config, one synthetic data set, one local Ray for the session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # Ray 2.59+ would write ~/.ray/auth_token

from deeplandscape.config import Config, load_config  # noqa: E402
from deeplandscape.data.synth import write_dataset  # noqa: E402


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory):
    """64 px photos and short time-lapses, shared by every test that trains."""
    out = tmp_path_factory.mktemp("synth-data")
    write_dataset(out, images=24, videos=4, frames=12, size=64, seed=7)
    return out


def tiny_config(synth_data, **overrides) -> Config:
    return load_config("tiny", {"data.images": str(synth_data / "photos"),
                                "data.videos": str(synth_data / "videos"), **overrides})


@pytest.fixture
def tiny_cfg(synth_data) -> Config:
    return tiny_config(synth_data)


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray shared by the tests that need it."""
    import ray

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=True)
    yield ray
    ray.shutdown()
