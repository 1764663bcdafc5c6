"""The bucket job (deeplandscape/invert/bucket.py) against a real moto S3 server on 127.0.0.1.

The job runs as `deeplandscape animate-bucket` in a child process with a local Ray of its own
(tests/fresh_ray.py): Ray workers inherit the environment of the Ray they belong to, and the
S3 endpoint and credentials are set in the test. An endpoint that drops is simulated by a
TCP proxy between the job and moto that cuts every connection and resets new ones until the
job has been refused a few times (moto's server loses its objects when stopped).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import numpy as np
import pytest
from PIL import Image

from deeplandscape import storage
from deeplandscape.invert.bucket import RUNS_DIR, assign_keys, output_key, read_manifest
from deeplandscape.invert.photos import PhotoError
from deeplandscape.storage import Retry
from deeplandscape.video import probe_video
from tests import fresh_ray
from tests.conftest import MOTO_KEY_ID, MOTO_SECRET

BUCKET = "dl-bucket-job"
KEY_ID, SECRET = MOTO_KEY_ID, MOTO_SECRET  # dummy credentials that must never show up in outputs
FAST = ["--frames", "4", "--directions", "2", "--set", "invert.opt_steps=5", "--set", "invert.finetune_steps=5",
        "--retry-wait", "0.5"]


# --- keys and retries, no Ray -------------------------------------------------------------------
def test_output_keys_mirror_the_input_and_cannot_escape():
    assert output_key("s3://b/in/", "s3://b/in/a/b c/ünï 東京.jpeg") == "a/b c/ünï 東京"
    assert output_key("s3://b/in", "s3://b/in/x.tar.png") == "x.tar"
    for bad in ("s3://b/in/../x.jpg", "s3://b/in/a/./x.jpg", "s3://b/in//x.jpg", "s3://b/in/a\\..\\x.jpg",
                "s3://b/in/a\nb.jpg", "s3://b/other/x.jpg", f"s3://b/in/{RUNS_DIR}/x.jpg"):
        with pytest.raises(PhotoError):
            output_key("s3://b/in", bad)
    keyed, failed = assign_keys("s3://b/in", ["s3://b/in/a.jpg", "s3://b/in/a.png", "s3://b/in/b.jpg",
                                              "s3://b/in/../c.jpg"])
    assert [k for _, k in keyed] == ["a-jpg", "a-png", "b"]
    assert len(failed) == 1 and failed[0]["status"] == "failed" and "unsafe key" in failed[0]["reason"]


def test_retry_gives_up_with_the_operation_named_and_lets_missing_files_through():
    calls = []

    def flaky(n_failures: int):
        calls.append(1)
        if len(calls) <= n_failures:
            raise OSError("AWS Error NETWORK_CONNECTION")
        return "ok"

    assert Retry(tries=3, first_wait_s=0.01)(flaky, 2, what="read x") == "ok" and len(calls) == 3
    calls.clear()
    with pytest.raises(OSError, match="read x: gave up after 3 tries"):
        Retry(tries=3, first_wait_s=0.01)(flaky, 5, what="read x")
    with pytest.raises(FileNotFoundError):
        Retry(tries=3, first_wait_s=10)(storage.read_bytes, "/nonexistent/file")  # no waiting


def test_a_manifest_of_uris_replaces_the_listing_and_dry_run_says_what_would_happen(tmp_path, tiny_run, capsys):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from deeplandscape.cli import main
    from deeplandscape.invert.bucket import list_inputs

    src = tmp_path / "in"
    for name in ("a.png", "a.mask.png", "b c.png", "d.png"):
        storage.write_bytes(str(src / name), b"x")
    manifest = tmp_path / "inputs.parquet"
    pq.write_table(pa.table({"uri": [str(src / "a.png"), str(src / "a.mask.png"), str(src / "b c.png"),
                                     str(tmp_path / "elsewhere.png")]}), manifest)
    uris = list_inputs(str(src), str(tmp_path / "out"), str(manifest), Retry())
    assert uris == [str(src / "a.png"), str(src / "b c.png"), str(tmp_path / "elsewhere.png")]  # no d.png, no mask
    keyed, failed = assign_keys(str(src), uris)
    assert [k for _, k in keyed] == ["a", "b c"] and "not under the input prefix" in failed[0]["reason"]

    storage.write_text(str(tmp_path / "out" / "a" / "done.json"), "{}")  # finished by an earlier run
    assert main(["animate-bucket", str(src), str(tmp_path / "out"), "--run-dir", str(tiny_run), "--dry-run"]) == 0
    assert "would animate 2 photo(s); 1 finished earlier; 0 unusable key(s)" in capsys.readouterr().out


def test_a_run_without_the_encoder_fails_on_the_driver_in_one_line(tmp_path, tiny_run, capsys):
    from deeplandscape.cli import main

    run = tmp_path / "run"
    shutil.copytree(tiny_run / "checkpoints", run / "checkpoints")  # G, but no RUN/encoder
    storage.write_bytes(str(tmp_path / "in" / "a.png"), b"x")
    for extra in ([], ["--dry-run"]):
        assert main(["animate-bucket", str(tmp_path / "in"), str(tmp_path / "out"), "--run-dir", str(run), *extra]) == 2
        err = capsys.readouterr().err
        assert f"no encoder under {run}/encoder/checkpoints" in err and "deeplandscape train-encoder" in err, err
    assert not (tmp_path / "out").exists()  # nothing started, nothing written
    # Methods that start from the mean w need no encoder: the dry run goes on.
    assert main(["animate-bucket", str(tmp_path / "in"), str(tmp_path / "out"), "--run-dir", str(run),
                 "--method", "MO", "--dry-run"]) == 0


def test_speed_in_pixels_per_second_and_directions_as_angles(tmp_path, tiny_run, capsys):
    from deeplandscape.cli import main

    storage.write_bytes(str(tmp_path / "in" / "a.png"), b"x")
    args = ["animate-bucket", str(tmp_path / "in"), str(tmp_path / "out"), "--run-dir", str(tiny_run), "--dry-run"]
    assert main([*args, "--speed", "12px/s", "--directions", "3h,-45deg", "--fps", "30"]) == 0
    out = capsys.readouterr().out
    # 32 px videos at 30 fps: the top corners move TOP_SPEED x 16 px per frame at x1, so 12 px/s is x2.5.
    assert "speed 12px/s at 32 px and 30 fps = x2.5 of the motions" in out
    job = json.loads(out[out.index("{"):out.rindex("}") + 1])["job"]
    assert job["speed"] == pytest.approx(2.5) and job["directions"] == ["3h", "315deg"]
    assert main([*args, "--speed", "12px/s", "--scale", "2", "--fps", "15"]) == 0  # 64 px at 15 fps: twice as fast
    assert json.loads((o := capsys.readouterr().out)[o.index("{"):o.rindex("}") + 1])["job"]["speed"] == 2.5
    for flag, bad, says in (("--speed", "fast", "speed 'fast': expected a factor"),
                            ("--directions", "3h,up", "angles in degrees")):
        with pytest.raises(SystemExit) as e:
            main([*args, flag, bad])
        assert e.value.code == 2 and says in capsys.readouterr().err


# --- S3, a flaky endpoint, photos of every kind -------------------------------------------------
@pytest.fixture
def s3(moto):
    """A moto S3 server with one bucket; this process's environment points at it. Its port."""
    moto.bucket(BUCKET)
    return moto.port


class FlakyProxy:
    """127.0.0.1:port -> 127.0.0.1:target, byte for byte. `down()` cuts every open connection
    and resets new ones (counted in `refused`) until `up()`: an endpoint that drops."""

    def __init__(self, target_port: int):
        self.target = target_port
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.refused, self.is_down, self.open = 0, False, set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:  # closed
                return
            with self.lock:
                if self.is_down:
                    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    client.close()  # a reset
                    self.refused += 1
                    continue
                upstream = socket.create_connection(("127.0.0.1", self.target))
                self.open |= {client, upstream}
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def down(self) -> None:
        with self.lock:
            self.is_down = True
            for s in self.open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self.open.clear()

    def up(self) -> None:
        with self.lock:
            self.is_down = False

    def close(self) -> None:
        self.down()
        self.server.close()


def wait_for(condition, timeout_s: float, what: str, proc: subprocess.Popen | None = None):
    """Poll `condition` until it is truthy; fail after `timeout_s` or when `proc` has exited."""
    deadline = time.monotonic() + timeout_s
    while not (value := condition()):
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the job exited ({proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
    return value


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def upright_photo() -> Image.Image:
    """64 x 48, bright on top and dark below: upright means the top half is the bright one."""
    arr = np.zeros((64, 48, 3), np.uint8)
    arr[:32] = (230, 230, 250)
    arr[32:] = (20, 40, 20)
    return Image.fromarray(arr)


def huge_png_header() -> bytes:
    """A tiny file whose header claims 100000 x 100000 pixels (a decompression bomb)."""
    import struct
    import zlib

    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    ihdr = struct.pack(">II", 100_000, 100_000) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def bucket_of_every_kind(synth_data: Path, prefix: str) -> tuple[dict[str, str], dict[str, str]]:
    """Upload good photos (masks next to two of them) and bad ones; ({key: input}, {input: reason})."""
    photos = synth_data / "photos"
    rgb = Image.open(photos / "00002.png").convert("RGB")
    rgba = rgb.copy()
    rgba.putalpha(Image.fromarray(np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1))))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    sixteen = Image.fromarray((np.asarray(rgb.convert("L"), np.uint16) * 257)).convert("I;16")
    jpeg = encode(rgb, "JPEG", quality=95)
    good = {
        "good/00000": ("good/00000.png", (photos / "00000.png").read_bytes()),
        "good/00001": ("good/00001.png", (photos / "00001.png").read_bytes()),
        "with space/ünïcödé 東京": ("with space/ünïcödé 東京.jpg", jpeg),
        "kinds/alpha": ("kinds/alpha.png", encode(rgba, "PNG")),
        "kinds/sixteen": ("kinds/sixteen.png", encode(sixteen, "PNG")),
        "kinds/gray": ("kinds/gray.jpg", encode(rgb.convert("L"), "JPEG")),
        "kinds/cmyk": ("kinds/cmyk.jpg", encode(rgb.convert("CMYK"), "JPEG")),
        "kinds/rotated": ("kinds/rotated.jpg", encode(upright_photo().transpose(Image.Transpose.ROTATE_90),
                                                      "JPEG", exif=exif.tobytes())),
        "kinds/photo": ("kinds/photo.webp", encode(rgb, "WEBP", quality=90)),
        "kinds/anim": ("kinds/anim.gif", encode(rgb.convert("P"), "GIF", save_all=True,
                                                append_images=[rgb.rotate(90).convert("P")], duration=100)),
    }
    bad = {
        "bad/empty.jpg": (b"", "empty file (0 bytes)"),
        "bad/truncated.jpg": (jpeg[: len(jpeg) // 2], "not a readable image"),
        "bad/text.jpg": (b"these are my holiday notes, not a photo\n", "not a readable image"),
        "bad/tiny.png": (encode(rgb.resize((16, 16)), "PNG"), "smaller than the model's 32 px"),
        "bad/huge.png": (huge_png_header(), "decompression-bomb"),
    }
    for key, (name, data) in good.items():
        storage.write_bytes(f"{prefix}/{name}", data)
    for name in ("00000", "00001"):  # masks next to the photos: never inputs themselves
        storage.write_bytes(f"{prefix}/good/{name}.mask.png", (photos / f"{name}.mask.png").read_bytes())
    for name, (data, _) in bad.items():
        storage.write_bytes(f"{prefix}/{name}", data)
    storage.write_bytes(f"{prefix}/notes.txt", b"not a photo suffix: not an input")
    return ({k: f"{prefix}/{name}" for k, (name, _) in good.items()},
            {f"{prefix}/{name}": reason for name, (_, reason) in bad.items()})


@contextlib.contextmanager
def job_process(commands: list[list[str]], log: Path, endpoint_port: int | None = None):
    """`deeplandscape` commands in a child process on a fresh local Ray; killed and cleaned up
    (its Ray included) on the way out."""
    with fresh_ray.ray_tmpdir() as (_, env), open(log, "w") as out:
        if endpoint_port is not None:
            env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{endpoint_port}"
        proc = subprocess.Popen([sys.executable, fresh_ray.__file__, json.dumps(commands)], env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def runs(out: str) -> list[str]:
    """Run folders under OUT/_runs, oldest first (run ids start with a UTC timestamp)."""
    return [storage.join(out, RUNS_DIR, r) for r in storage.list_dirs(storage.join(out, RUNS_DIR))]


def done_keys(out: str) -> set[str]:
    try:
        return {u[len(out) + 1 : -len("/done.json")] for u in storage.list_files(out, ("/done.json",))}
    except FileNotFoundError:
        return set()


def objects(prefix: str) -> dict[str, tuple[str, object]]:
    """key -> (ETag, LastModified) of every object under s3://BUCKET/prefix."""
    pages = boto3.client("s3").get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    return {o["Key"]: (o["ETag"], o["LastModified"]) for page in pages for o in page.get("Contents", [])}


def assert_playable(out: str, key: str, tmp_path: Path, directions: int) -> dict:
    done = json.loads(storage.read_text(f"{out}/{key}/done.json"))
    videos = [k for k in done["outputs"] if k.endswith(".mp4")]
    assert len(videos) == directions and all(k.startswith(f"{out}/{key}/") for k in done["outputs"])
    for uri in videos:
        local = tmp_path / "probe.mp4"
        local.write_bytes(storage.read_bytes(uri))
        info = probe_video(local)
        assert info.num_frames == 4 and (info.width, info.height) == (32, 32), (uri, info)
        assert storage.exists(uri[: -len(".mp4")] + ".jpg")  # poster
    return done


def test_bucket_of_every_kind_through_an_endpoint_that_drops(s3, tiny_run, synth_data, tmp_path):
    src, out = f"s3://{BUCKET}/in", f"s3://{BUCKET}/out"
    good, bad = bucket_of_every_kind(synth_data, src)
    proxy = FlakyProxy(s3)
    args = ["animate-bucket", src + "/", out, "--run-dir", str(tiny_run), *FAST, "--set", "invert.batch=4"]
    log = tmp_path / "job.log"
    try:
        with job_process([args], log, endpoint_port=proxy.port) as proc:
            wait_for(lambda: done_keys(out), 400, "the first photo's done.json", proc)
            proxy.down()  # mid-job: the job's reads and uploads are cut and refused ...
            # ... until the S3 client's own quick retries are spent and the job's backoff starts,
            wait_for(lambda: proxy.refused >= 3 and "retry 1/" in log.read_text(), 120,
                     "the job to retry a refused storage call", proc)
            proxy.up()  # ... then the endpoint is back and the retried call goes through
            assert proc.wait(timeout=400) == 0, log.read_text()[-4000:]
    finally:
        proxy.close()
    output = log.read_text()

    (run,) = runs(out)
    summary = json.loads(storage.read_text(f"{run}/summary.json"))
    assert (summary["ok"], summary["failed"], summary["skipped"]) == (len(good), len(bad), 0), summary
    rows = {r["input"]: r for r in read_manifest(run).to_pylist()}
    assert set(rows) == set(good.values()) | set(bad)  # masks and notes.txt are not inputs
    for uri, reason in bad.items():
        assert rows[uri]["status"] == "failed" and reason in rows[uri]["reason"] and uri in rows[uri]["reason"]
        assert not storage.exists(f"{out}/{output_key(src, uri)}")
    for key, uri in good.items():
        row = rows[uri]
        assert row["status"] == "ok" and row["key"] == key, row
        assert np.isfinite([row[s] for s in ("read_s", "decode_s", "invert_s", "render_s", "upload_s")]).all()
        assert row["psnr_db"] > 5 and 0 < row["l1"] < 1 and np.isnan(row["lpips"])  # no VGG file offline
        done = assert_playable(out, key, tmp_path, directions=2)
        assert done["method"] == ("EOIFS" if key.startswith("good/") else "EOIF")  # masks were found
        assert set(row["outputs"]) == set(done["outputs"]) | {f"{out}/{key}/done.json"}
    # The EXIF-rotated photo went in upright: the left panel of compare.png is the model's input.
    compare = np.asarray(Image.open(io.BytesIO(storage.read_bytes(f"{out}/kinds/rotated/compare.png"))))
    panel = compare[:, :32].astype(float)
    assert panel[:12].mean() > 150 > 80 > panel[-12:].mean()

    # No credentials anywhere: not in the job's output, not in anything it wrote.
    written = b"".join(storage.read_bytes(u) for u in storage.list_files(out))
    for secret in (KEY_ID, SECRET):
        assert secret not in output and secret.encode() not in written


def test_a_killed_job_resumes_without_redoing_finished_photos(s3, tiny_run, synth_data, tmp_path):
    src, out = f"s3://{BUCKET}/in", f"s3://{BUCKET}/out"
    names = [f"{i:05d}" for i in range(6)]
    for name in names:
        for suffix in (".png", ".mask.png"):
            storage.write_bytes(f"{src}/{name}{suffix}", (synth_data / "photos" / f"{name}{suffix}").read_bytes())
    # One photo per batch, so done.json files appear one after another.
    args = ["animate-bucket", src, out, "--run-dir", str(tiny_run), *FAST, "--set", "invert.batch=1"]
    with job_process([args], tmp_path / "killed.log") as proc:
        wait_for(lambda: done_keys(out), 400, "the first photo's done.json", proc)
        os.killpg(proc.pid, signal.SIGKILL)  # a crash: no summary, no goodbye
    # Everything of the killed run is gone now (its Ray too): what is finished stays finished.
    finished = done_keys(out)
    assert 1 <= len(finished) < len(names), finished
    before = objects("out/")
    (killed_run,) = runs(out)
    killed_id = killed_run.rsplit("/", 1)[1]
    assert not storage.exists(f"{killed_run}/summary.json")

    done = fresh_ray.run_commands([args, args], timeout_s=600)  # resume, then an idempotent re-run
    assert done.returncode == 0, done.stdout[-4000:]
    _, resumed, again = runs(out)
    s_resumed = json.loads(storage.read_text(f"{resumed}/summary.json"))
    s_again = json.loads(storage.read_text(f"{again}/summary.json"))
    assert (s_resumed["ok"], s_resumed["skipped"], s_resumed["failed"]) == (len(names) - len(finished),
                                                                            len(finished), 0)
    assert (s_again["ok"], s_again["skipped"], s_again["failed"]) == (0, len(names), 0)
    after = objects("out/")
    for key in finished:  # not redone: same objects, same ETags and times, same run id in done.json
        mine = {k: v for k, v in before.items() if k.startswith(f"out/{key}/")}
        assert mine and all(after[k] == v for k, v in mine.items())
        assert json.loads(storage.read_text(f"{out}/{key}/done.json"))["run_id"] == killed_id
    resumed_id = resumed.rsplit("/", 1)[1]
    for key in names:
        done_json = assert_playable(out, key, tmp_path, directions=2)
        assert done_json["run_id"] == (killed_id if key in finished else resumed_id)
    # The idempotent re-run wrote nothing but its own run folder: every other object is older.
    from datetime import datetime

    again_started = datetime.fromisoformat(s_again["started_at"])
    assert all(modified < again_started for k, (_, modified) in after.items() if f"/{RUNS_DIR}/" not in k)
