"""`deeplandscape prepare`: raw photos and mp4s -> Parquet shards at every resolution, with the
bad files listed (not fatal); from a folder and from a moto S3 server on 127.0.0.1."""

from __future__ import annotations

import io
import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from deeplandscape import storage
from deeplandscape.cli import main
from deeplandscape.data.prepare import prepare, resolutions_for
from deeplandscape.data.training import resize_to, square_resize, to_float
from deeplandscape.data.transforms import box_downsample, decode_image
from deeplandscape.video import read_video

RESOLUTIONS = [8, 16, 32, 64]


def raw_folder(synth_data, tmp_path, photos: int, videos: int):
    """A few synthetic photos and mp4s plus the bad files a real bucket has."""
    raw = tmp_path / "raw"
    (raw / "photos").mkdir(parents=True)
    (raw / "videos").mkdir()
    for i in range(photos):
        shutil.copy(synth_data / "photos" / f"{i:05d}.png", raw / "photos")
    for i in range(videos):
        shutil.copy(synth_data / "videos" / f"{i:05d}.mp4", raw / "videos")
    png = (synth_data / "photos" / "00000.png").read_bytes()
    mp4 = (synth_data / "videos" / "00000.mp4").read_bytes()
    bad = {
        "photos/empty.jpg": (b"", "empty file"),
        "photos/notes.jpg": (b"shot list: lake at dawn\n", "not an image"),
        "photos/cut.png": (png[: len(png) // 2], "damaged image"),
        "videos/noise.mp4": (bytes(range(256)) * 20, "cannot read video"),
        "videos/cut.mp4": (mp4[: len(mp4) // 2], "cannot read video"),
    }
    for name, (data, _) in bad.items():
        (raw / name).write_bytes(data)
    return raw, {str(raw / name): reason for name, (_, reason) in bad.items()}


def shard_rows(uri: str, table: str) -> list[dict]:
    fs, path = storage.resolve(storage.join(uri, table))
    return pq.read_table(path, filesystem=fs).to_pylist()


def test_prepare_folder_skips_bad_files_and_stores_every_resolution(local_ray, synth_data, tmp_path, capsys):
    raw, bad = raw_folder(synth_data, tmp_path, photos=5, videos=2)
    out = tmp_path / "shards"
    args = ["prepare", "--images", str(raw / "photos"), "--videos", str(raw / "videos"), "--out", str(out),
            "--resolutions", ",".join(map(str, RESOLUTIONS))]
    assert main(args) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["resolutions"] == RESOLUTIONS and manifest["format"] == "png"
    assert manifest["photos"] == {"source": str(raw / "photos"), "files": 8, "prepared": 5}
    assert manifest["videos"] == {"source": str(raw / "videos"), "files": 4, "prepared": 2, "clips": 2, "frames": 24}
    assert {s["source"]: s["reason"] for s in manifest["skipped"]}.keys() == bad.keys()
    for s in manifest["skipped"]:
        assert bad[s["source"]] in s["reason"], s
    assert "skipped photo" in capsys.readouterr().err

    # Photos: PNG is lossless, so the top level is exactly what TrainingData.load decodes, and
    # each lower level is the box filter resize_to applies in memory (up to uint8 rounding).
    photos = [r for r in shard_rows(str(out), "photos") if not r["error"]]
    assert len(photos) == 5
    for row in photos:
        source = np.asarray(Image.open(row["source"]).convert("RGB"))
        top = decode_image(row["r64"])
        np.testing.assert_array_equal(top, square_resize(source, 64))
        memory = resize_to(to_float(torch.from_numpy(top).permute(2, 0, 1)[None]), 8)[0]
        stored = to_float(torch.from_numpy(decode_image(row["r8"])).permute(2, 0, 1))
        assert (stored - memory).abs().max() <= 0.5 / 127.5 + 1e-6
        np.testing.assert_array_equal(decode_image(row["r8"]), box_downsample(top, 8))

    # Clips: every frame of each good video, once, at every resolution, in one row per clip.
    clips = [r for r in shard_rows(str(out), "clips") if not r["error"]]
    assert len(clips) == 2
    for row in clips:
        frames, _ = read_video(row["source"])
        assert sorted(row["frame_index"]) == list(range(len(frames))) == list(range(12))
        for k, data in zip(row["frame_index"], row["r64"]):
            np.testing.assert_array_equal(decode_image(data), square_resize(frames[k], 64))
        assert [decode_image(b).shape for b in row["r16"][:1]] == [(16, 16, 3)]

    # Preparing into the same place again is refused rather than mixing two runs.
    assert main(args) == 2
    assert "already holds prepared shards" in capsys.readouterr().err


def test_resolutions_follow_the_training_schedule():
    assert resolutions_for(8, 64) == [8, 16, 32, 64]
    assert resolutions_for(8, 512) == [8, 16, 32, 64, 128, 256, 512]
    with pytest.raises(ValueError, match="powers of two"):
        prepare("x", "y", "z", [8, 24])


# --- S3 ----------------------------------------------------------------------------------------
@pytest.fixture
def moto_s3(moto):
    """A moto S3 server on 127.0.0.1 with a raw and a shards bucket; dummy credentials.

    The session's Ray started before this environment existed, so its workers do not have
    it: prepare must hand them the filesystem it resolved, as a cluster without
    AWS_ENDPOINT_URL on its nodes would need.
    """
    for bucket in ("dl-raw", "dl-shards"):
        moto.bucket(bucket)
    return moto.client


def test_prepare_from_s3_to_s3_as_jpeg(local_ray, synth_data, tmp_path, moto_s3):
    raw, _ = raw_folder(synth_data, tmp_path, photos=3, videos=1)
    for path in sorted(raw.rglob("*")):
        if path.is_file() and "cut" not in path.name and "empty" not in path.name:
            moto_s3.upload_file(str(path), "dl-raw", path.relative_to(raw).as_posix())
    manifest = prepare("s3://dl-raw/photos", "s3://dl-raw/videos", "s3://dl-shards/set1", RESOLUTIONS,
                       fmt="jpeg", quality=95, log=lambda line: None)
    assert manifest["photos"]["prepared"] == 3 and manifest["videos"]["prepared"] == 1
    assert [(s["source"], s["kind"]) for s in manifest["skipped"]] == [
        ("s3://dl-raw/photos/notes.jpg", "photo"), ("s3://dl-raw/videos/noise.mp4", "video")]
    assert json.loads(storage.read_text("s3://dl-shards/set1/manifest.json")) == manifest

    rows = [r for r in shard_rows("s3://dl-shards/set1", "photos") if not r["error"]]
    for row in rows:
        key = row["source"].removeprefix("s3://dl-raw/")
        source = np.asarray(Image.open(io.BytesIO(moto_s3.get_object(Bucket="dl-raw", Key=key)["Body"].read())))
        diff = np.abs(decode_image(row["r64"]).astype(int) - square_resize(source[..., :3], 64).astype(int))
        assert diff.mean() < 3.0, (row["source"], diff.mean())  # JPEG at quality 95
    clips = [r for r in shard_rows("s3://dl-shards/set1", "clips") if not r["error"]]
    assert len(clips) == 1 and sorted(clips[0]["frame_index"]) == list(range(12))
