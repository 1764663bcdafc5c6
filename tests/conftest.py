"""Shared fixtures: the tiny config, one synthetic data set, one local Ray for the session."""

from __future__ import annotations

import os
import socket
import urllib.request
from dataclasses import dataclass
from typing import Any

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


def noisy_tiny_generator():
    """A fresh tiny G (seed 0) whose noise inputs have an effect: their scales start at zero."""
    import torch

    from deeplandscape.nets.generator import Generator

    torch.manual_seed(0)
    G = Generator(load_config("tiny").model).eval()
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith(".scale"):
                p.normal_(0, 0.5)
    return G


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


# --- stand-in pretrained weights ----------------------------------------------------------------
# The published files cannot be downloaded here. The stand-ins have the real keys and shapes, so
# every loading and feature path runs; their values compare our code with itself or with
# pytorch-fid, not with the papers' figures.
@pytest.fixture(scope="session")
def stand_in_cache(tmp_path_factory):
    """One weight cache folder for the session; fixtures below add files to it."""
    return tmp_path_factory.mktemp("stand-in-weights")


@pytest.fixture(scope="session")
def image_stand_ins(stand_in_cache):
    """Inception (FID) and VGG16 (LPIPS) stand-ins in the cache (~150 MB, a few seconds)."""
    from deeplandscape.evaluate.stand_ins import write_stand_in_weights

    write_stand_in_weights(stand_in_cache, ("inception", "vgg16"), seed=0)
    return stand_in_cache


@pytest.fixture
def eval_env(stand_in_cache, tmp_path, monkeypatch):
    """$DEEPLANDSCAPE_WEIGHTS on the stand-in cache and a fresh, empty statistics cache."""
    monkeypatch.setenv("DEEPLANDSCAPE_WEIGHTS", str(stand_in_cache))
    monkeypatch.setenv("DEEPLANDSCAPE_STATS_CACHE", str(tmp_path / "stats-cache"))
    return stand_in_cache


# --- S3: a real moto server on 127.0.0.1 ---------------------------------------------------------
MOTO_KEY_ID = "AKIADLTESTKEYID00042"  # dummy credentials that must never show up in outputs
MOTO_SECRET = "dl-test-secret-4f1d9c0b7e"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class MotoS3:
    port: int
    endpoint: str
    client: Any  # a boto3 S3 client on the server

    def bucket(self, name: str) -> str:
        """Create a bucket; its s3:// URI."""
        self.client.create_bucket(Bucket=name)
        return f"s3://{name}"


@pytest.fixture
def moto(monkeypatch):
    """An empty moto S3 server on 127.0.0.1; this process's AWS_* environment points at it
    with the dummy credentials above (a Ray started earlier does not have them)."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    # moto keeps every server's objects in one store per process: start from an empty one.
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
    for name, value in {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": MOTO_KEY_ID,
                        "AWS_SECRET_ACCESS_KEY": MOTO_SECRET, "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    yield MotoS3(port, endpoint, boto3.client("s3"))
    server.stop()
