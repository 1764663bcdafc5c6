"""A training run whose data and run directory are in S3 (a real moto server on 127.0.0.1),
stopped and resumed from the checkpoint in the bucket.

Training runs through `tests/fresh_ray.py`: a child process whose own local Ray starts with
the S3 endpoint and credentials in its environment, as a cluster's nodes would have them.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deeplandscape import storage
from deeplandscape.config import load_config
from deeplandscape.train.checkpoint import list_checkpoints
from deeplandscape.train.launch import train
from deeplandscape.train.loop import MetricsWriter
from tests.conftest import MOTO_KEY_ID, MOTO_SECRET
from tests.fresh_ray import run_commands

BUCKET = "dl-test-bucket"
KEY_ID, SECRET = MOTO_KEY_ID, MOTO_SECRET  # dummy credentials that must never show up in outputs


@pytest.fixture
def s3(moto):
    """A moto S3 server with one bucket; this process's environment points at it."""
    return moto.bucket(BUCKET)


def upload(folder: Path, uri: str) -> None:
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            storage.upload_file(path, storage.join(uri, path.relative_to(folder).as_posix()))


def all_objects(uri: str) -> bytes:
    return b"".join(storage.read_bytes(u) for u in storage.list_files(uri))


def test_train_and_resume_with_data_and_run_dir_in_s3(s3, synth_data):
    upload(synth_data, f"{s3}/data")
    run = f"{s3}/runs/exp1"
    common = ["train", "--config", "tiny", "--images", f"{s3}/data/photos", "--videos", f"{s3}/data/videos",
              "--run-dir", run, "--set", 'train.batch={"8": 8}', "--set", "train.log_every=2",
              "--set", "train.checkpoint_kimg=0.016", "--set", "train.sample_kimg=0.032",
              "--set", "train.max_steps=4", "--set", "scale.cpus_per_worker=1"]
    done = run_commands([common, common])  # the second call resumes and trains 4 more steps
    output = done.stdout
    assert done.returncode == 0, output[-4000:]
    assert f"new run in {run}" in output and f"resuming {run} from step 4" in output

    # Checkpoints, metrics, TensorBoard events, samples and Ray Train's files are in the bucket.
    assert [c.step for c in list_checkpoints(run)] == [4, 6, 8]  # 2 dropped: newest 3 kept
    steps = [json.loads(line)["step"] for line in storage.read_text(f"{run}/metrics.jsonl").splitlines()]
    assert steps == [2, 4, 6, 8]
    events = storage.list_files(f"{run}/tensorboard")
    assert len(events) == 2 and all(b"D_st_loss" in storage.read_bytes(e) for e in events)  # one file per run
    assert storage.list_files(f"{run}/samples", (".png",))
    assert storage.list_files(f"{run}/ray")
    assert json.loads(storage.read_text(f"{run}/config.json"))["data"]["images"] == f"{s3}/data/photos"

    # The credentials appear nowhere: not in the output, not in any object the run wrote.
    written = all_objects(run)
    for secret in (KEY_ID, SECRET):
        assert secret not in output and secret.encode() not in written


def test_metrics_in_a_bucket_are_written_in_batches(s3):
    """An object cannot be appended to: lines are kept until flush (checkpoint, N lines, close)."""
    run = f"{s3}/runs/batched"
    writer = MetricsWriter(run, resume_step=0, flush_lines=3)
    lines = lambda: storage.read_text(f"{run}/metrics.jsonl").splitlines()  # noqa: E731
    for step in (1, 2):
        writer.write({"step": step, "D_st_loss": 0.5})
    assert lines() == [] and not storage.exists(f"{run}/tensorboard")
    writer.write({"step": 3, "D_st_loss": 0.5})  # the third line flushes
    assert [json.loads(ln)["step"] for ln in lines()] == [1, 2, 3]
    assert len(storage.list_files(f"{run}/tensorboard")) == 1
    writer.write({"step": 4, "D_st_loss": 0.5})
    writer.flush()  # what a checkpoint does
    assert len(lines()) == 4
    writer.write({"step": 5, "D_st_loss": 0.5})
    writer.close()
    assert len(lines()) == 5 and not Path(writer.tb_dir).exists()
    # Resuming from step 4 drops the line of step 5, which no checkpoint holds.
    MetricsWriter(run, resume_step=4).close()
    assert len(lines()) == 4


def test_credentials_inside_a_uri_are_refused_without_being_printed(tmp_path):
    cfg = load_config("tiny", {"data.images": f"s3://{KEY_ID}:{SECRET}@bucket/photos", "data.videos": str(tmp_path)})
    with pytest.raises(ValueError, match="data.images") as e:
        train(cfg, str(tmp_path / "run"))
    assert SECRET not in str(e.value) and "s3://***@bucket/photos" in str(e.value)
    assert not (tmp_path / "run").exists()
