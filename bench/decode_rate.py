"""Photo and frame-pair decoding rate per CPU core: raw files vs prepared shards, disk vs S3.

    .venv/bin/python bench/decode_rate.py --size 512 --resolution 256

Writes a synthetic data set at --size px (photos re-encoded as JPEG q95, as a camera writes
them; H.264 time-lapses), prepares it into PNG and JPEG shards (`deeplandscape prepare`, Ray
Data on 2 CPUs), copies everything into a moto S3 server on 127.0.0.1 (a process of its own,
so its CPU is not counted), then decodes in this one process with the very functions the
training stream runs inside Ray Data tasks (`transforms.decode_photos`, `decode_pairs`):
real photos and real pairs at --resolution, read from the stored column (shards) or from the
raw file (centre square resized to the load resolution 2 x --resolution first, as in memory).

Reports samples per wall second and per CPU second of this process (PyAV may decode a video
on more than one thread, so CPU seconds are the per-core figure), and the bytes read per sample:
the best of `--repeat` interleaved rounds over every cell, with the spread of the wall rate,
and the machine's matmul rate before and after.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from machine import Watch, free_port, spread  # bench/machine.py

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


def start_moto() -> tuple[subprocess.Popen, str]:
    """A moto S3 server in its own process; returns it and its endpoint once it answers."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("moto server did not start")


def write_raw(out: Path, photos: int, videos: int, frames: int, size: int) -> None:
    """Synthetic photos as JPEG q95 in out/photos, H.264 mp4s in out/videos (masks dropped)."""
    from PIL import Image

    from deeplandscape.data.synth import write_dataset

    synth = out.parent / "synth"
    write_dataset(synth, images=photos, videos=videos, frames=frames, size=size, seed=0)
    (out / "photos").mkdir(parents=True)
    (out / "videos").mkdir()
    for p in sorted((synth / "photos").glob("?????.png")):
        Image.open(p).convert("RGB").save(out / "photos" / f"{p.stem}.jpg", quality=95)
    for v in sorted((synth / "videos").glob("*.mp4")):
        v.rename(out / "videos" / v.name)


def upload(folder: Path, uri: str) -> None:
    from deeplandscape import storage

    for path in sorted(folder.rglob("*")):
        if path.is_file():
            storage.write_bytes(storage.join(uri, path.relative_to(folder).as_posix()), path.read_bytes())


def batches(uri: str, kind: str, source, r: int):
    """(input batches as Ray Data would hand them to the UDF, bytes read) for one pass."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from deeplandscape import storage
    from deeplandscape.data.training import PHOTO_SUFFIXES, VIDEO_SUFFIXES
    from deeplandscape.data.transforms import column

    if not source.prepared:  # one filesystem for all files, as read_binary_files has
        fs, _ = storage.resolve(uri)
        for u in storage.list_files(uri, PHOTO_SUFFIXES if kind == "photos" else VIDEO_SUFFIXES):
            with fs.open_input_stream(u.split("://", 1)[-1]) as f:
                data = f.read()
            yield pa.table({"bytes": [data], "path": [u]}), len(data)
        return
    c = source.real_resolution(r)
    columns = ["photo_id", "error", column(c)] if kind == "photos" else ["video_id", "error", "frame_index", column(c)]
    fs, path = storage.resolve(storage.join(uri, "photos" if kind == "photos" else "clips"))
    table = pq.read_table(path, filesystem=fs, columns=columns)
    step = 32 if kind == "photos" else 1
    for i in range(0, len(table), step):
        part = table.slice(i, step)
        yield part, part.column(column(c)).nbytes


def measure(uri: str, kind: str, r: int, load_res: int, min_seconds: float) -> dict[str, float]:
    """Passes over the whole set until min_seconds: samples per wall and per CPU second."""
    from deeplandscape.data.stream import open_source
    from deeplandscape.data.transforms import column, decode_pairs, decode_photos

    source = open_source(uri, load_res, "photos" if kind == "photos" else "videos")
    samples = nbytes = 0
    wall, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < min_seconds:
        for batch, size in batches(uri, kind, source, r):
            if kind == "photos":
                c = source.real_resolution(r)
                out = decode_photos(batch, r, source, c, c, column(c), repeat=1)
            else:
                c = source.real_resolution(r)
                out = decode_pairs(batch, r, source, c, c, column(c), repeat=1)
            samples += len(out["image"])
            nbytes += size
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"wall": samples / wall, "cpu": samples / cpu, "kb": nbytes / samples / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=512, help="side of the synthetic photos and videos")
    ap.add_argument("--resolution", type=int, default=256, help="training resolution of the samples")
    ap.add_argument("--photos", type=int, default=48)
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--seconds", type=float, default=3.0, help="minimum time per measurement")
    ap.add_argument("--repeat", type=int, default=3, help="rounds over every cell, interleaved")
    args = ap.parse_args()

    import ray

    from deeplandscape.data.prepare import prepare, resolutions_for

    r, load_res = args.resolution, 2 * args.resolution
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_raw(root / "raw", args.photos, args.videos, args.frames, args.size)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        timings = {}
        for fmt in ("png", "jpeg"):
            start = time.perf_counter()
            prepare(str(root / "raw/photos"), str(root / "raw/videos"), str(root / f"shards-{fmt}"),
                    resolutions_for(8, load_res), fmt=fmt, log=lambda line: None)
            timings[fmt] = time.perf_counter() - start
        ray.shutdown()

        moto, endpoint = start_moto()
        try:
            os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                               "AWS_DEFAULT_REGION": "us-east-1"})
            import boto3

            boto3.client("s3").create_bucket(Bucket="bench")
            for name in ("raw", "shards-png", "shards-jpeg"):
                upload(root / name, f"s3://bench/{name}")
            inputs = {"photos": [("raw jpeg", "raw/photos"), ("shards png", "shards-png"), ("shards jpeg", "shards-jpeg")],
                      "pairs": [("raw mp4", "raw/videos"), ("shards png", "shards-png"), ("shards jpeg", "shards-jpeg")]}
            cells = [(kind, label, rel) for kind, rows in inputs.items() for label, rel in rows]
            got: dict = {(kind, label, where): [] for kind, label, _ in cells for where in ("local", "s3")}
            with Watch():
                for _ in range(args.repeat):  # interleaved: every cell once per round
                    for kind, label, rel in cells:
                        got[kind, label, "local"].append(measure(str(root / rel), kind, r, load_res, args.seconds))
                        got[kind, label, "s3"].append(measure(f"s3://bench/{rel}", kind, r, load_res, args.seconds))
            best = {k: max(v, key=lambda m: m["wall"]) for k, v in got.items()}
            spreads = {k: spread([1 / m["wall"] for m in v]) for k, v in got.items()}
            rows = [(kind, label, best[kind, label, "local"], best[kind, label, "s3"],
                     max(spreads[kind, label, "local"], spreads[kind, label, "s3"])) for kind, label, _ in cells]
        finally:
            moto.terminate()
            moto.wait()

    print(f"{args.photos} photos and {args.videos} videos x {args.frames} frames at {args.size} px -> samples at {r} px "
          f"(load resolution {load_res}); prepare on 2 CPUs: png {timings['png']:.1f} s, jpeg {timings['jpeg']:.1f} s")
    print("one process; samples/s per wall second and per CPU second (= per core); KB read per sample")
    print(f"{'kind':7s} {'input':12s} {'local wall':>10s} {'local cpu':>10s} {'s3 wall':>10s} {'s3 cpu':>10s} {'KB':>7s} "
          f"{'spread':>6s}")
    for kind, label, local, s3, sp in rows:
        print(f"{kind:7s} {label:12s} {local['wall']:10.1f} {local['cpu']:10.1f} {s3['wall']:10.1f} {s3['cpu']:10.1f} "
              f"{local['kb']:7.1f} {sp:6.0%}")


if __name__ == "__main__":
    main()
