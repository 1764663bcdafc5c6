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


@pytest.fixture(scope="session")
def tiny_run(synth_data, tmp_path_factory):
    """A tiny 32 px run trained in-process for a few steps, with an inversion encoder.

    Shared by the tests that invert, animate or evaluate photos. Training starts at 32 px so
    the few steps all go into the final resolution.
    """
    from deeplandscape.invert.encoder import run_encoder_worker
    from deeplandscape.train.loop import run_worker

    run_dir = tmp_path_factory.mktemp("tiny-run") / "run"
    cfg = tiny_config(synth_data, **{"train.start_resolution": "32", "train.max_steps": "60",
                                     "train.sample_kimg": "0", "train.log_every": "30",
                                     "invert.encoder_batch": "16"})
    run_worker(cfg, str(run_dir))
    run_encoder_worker(cfg, str(run_dir), max_steps=25)
    return run_dir
