"""Ray Data streaming input: prepared shards -> each worker's photos, real pairs and crop
pairs, at the resolution of the current phase; disjoint shards per Ray Train worker; a short
training run that streams its data under Ray Train."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from deeplandscape.data.prepare import prepare
from deeplandscape.data.stream import StreamingData, open_training_data, resolve_source, training_datasets
from deeplandscape.data.training import TrainingData
from deeplandscape.data.transforms import decode_image
from tests.conftest import tiny_config


@pytest.fixture(scope="module")
def shards(local_ray, synth_data, tmp_path_factory):
    """The session's synthetic photos and videos prepared at 8 ... 64 px (PNG, lossless)."""
    out = tmp_path_factory.mktemp("shards") / "set"
    prepare(str(synth_data / "photos"), str(synth_data / "videos"), str(out), [8, 16, 32, 64], log=lambda line: None)
    return out


def stream_config(synth_data, shards, **overrides):
    return tiny_config(synth_data, **{"data.images": str(shards), "data.videos": "", **overrides})


def stored_frames(shards, resolution: int) -> dict[tuple[int, int], np.ndarray]:
    """{(video_id, frame): [r, r, 3] uint8} straight from the shards."""
    rows = pq.read_table(shards / "clips").to_pylist()
    return {(row["video_id"], f): decode_image(data)
            for row in rows for f, data in zip(row["frame_index"], row[f"r{resolution}"])}


def as_hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).numpy()  # [3, r, r] -> [r, r, 3]


def window(frames: list[np.ndarray], top: int, left: int, side: int, r: int, flip: bool) -> np.ndarray:
    """The side x side window of each frame, box-resized to r as the stream does, maybe flipped."""
    from PIL import Image

    out = [np.asarray(Image.fromarray(np.ascontiguousarray(f[top:top + side, left:left + side]))
                      .resize((r, r), Image.Resampling.BOX)) for f in frames]
    return np.stack([x[:, ::-1] if flip else x for x in out])


def test_source_selection(synth_data, shards):
    assert resolve_source(tiny_config(synth_data)) == "memory"
    assert resolve_source(stream_config(synth_data, shards)) == "stream"
    assert resolve_source(tiny_config(synth_data, **{"data.source": "stream"})) == "stream"  # raw folders
    assert training_datasets(tiny_config(synth_data)) is None
    with pytest.raises(ValueError, match="prepared shards"):
        resolve_source(stream_config(synth_data, shards, **{"data.source": "memory"}))
    assert isinstance(open_training_data(tiny_config(synth_data)), TrainingData)


def test_batches_follow_the_phase_resolution_and_pairs_come_from_one_video(local_ray, synth_data, shards):
    data = open_training_data(stream_config(synth_data, shards))
    assert isinstance(data, StreamingData)
    try:
        # Photos switch stream at a phase change: 8 px, then 16 px (global batch 16, this worker's half).
        for r in (8, 16):
            x = data.sample_images(16, r, None, slice(0, 8))
            assert x.shape == (8, 3, r, r) and x.dtype == torch.float32
            assert -1.0 <= x.min() and x.max() <= 1.0

        # Real pairs at 16 px: two different frames of ONE video, one window of 0.75 of the
        # side (train.window) for both, flipped alike: 24 px of the stored 32 px frames.
        frames32 = stored_frames(shards, 32)
        b = data.next_batch("pairs", 16, 8)
        assert b["image"].shape == (8, 2, 3, 16, 16) and b["image"].dtype == torch.uint8
        for vid, (fa, fb), pair in zip(b["video_id"].tolist(), b["frame_index"].tolist(), b["image"]):
            assert fa != fb
            got = np.stack([as_hwc(pair[0]), as_hwc(pair[1])])
            assert any(np.array_equal(got, window([frames32[vid, fa], frames32[vid, fb]], top, left, 24, 16, flip))
                       for top in range(9) for left in range(9) for flip in (False, True)), "not one shared window"
        assert data.sample_pairs(16, 16, None, slice(8, 16)).shape == (8, 2, 3, 16, 16)

        # Crop pairs at 8 px: windows of the same 0.75 of the side, cut from the 16 px frames
        # (12 px), at two different places, flipped alike.
        frames16 = stored_frames(shards, 16)
        crops = data.sample_crop_pairs(8, 8, None, slice(0, 4))
        assert crops.images.shape == (4, 2, 3, 8, 8)
        for (vid, f), boxes, pair in zip(crops.frames.tolist(), crops.boxes.tolist(), crops.images):
            assert boxes[0] != boxes[1]
            got = ((pair.permute(0, 2, 3, 1).numpy() + 1.0) * 127.5).round().astype(np.uint8)
            frame = frames16[vid, f]
            (t0, l0, side), (t1, l1, _) = boxes
            assert side == 12 and all(0 <= v <= 4 for v in (t0, l0, t1, l1))
            cut = lambda flip: np.concatenate([window([frame], t0, l0, 12, 8, flip),  # noqa: E731
                                               window([frame], t1, l1, 12, 8, flip)])
            assert np.array_equal(got, cut(False)) or np.array_equal(got, cut(True))
    finally:
        data.close()


def test_two_ray_train_workers_get_disjoint_shards(local_ray, synth_data, shards, tmp_path):
    """One epoch of photos and of pairs over two workers: every photo and every frame exactly once."""
    from ray.train import ScalingConfig
    from ray.train.torch import TorchTrainer

    cfg = stream_config(synth_data, shards, **{"data.epoch_rows": "0", "data.shuffle_rows": "0"})

    def loop(config):  # defined here, so Ray ships it by value to the workers
        import ray.train

        from deeplandscape.config import Config
        from deeplandscape.data.stream import StreamingData

        rank = ray.train.get_context().get_world_rank()
        data = StreamingData.open(Config.from_dict(config["cfg"]))
        seen = {"photos": [], "frames": []}
        for _ in range(3):  # 24 photos / 2 workers / 4 per batch
            seen["photos"] += data.next_batch("photos", 8, 4)["photo_id"].tolist()
        for _ in range(3):  # 48 frames = 24 pairs / 2 workers / 4 per batch
            b = data.next_batch("pairs", 8, 4)
            seen["frames"] += [[v, f] for v, fs in zip(b["video_id"].tolist(), b["frame_index"].tolist()) for f in fs]
        data.close()
        with open(f"{config['out']}/rank-{rank}.json", "w") as f:
            json.dump(seen, f)

    TorchTrainer(loop, train_loop_config={"cfg": cfg.to_dict(), "out": str(tmp_path)},
                 scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 0.5}),
                 datasets=training_datasets(cfg)).fit()
    seen = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    photos = [set(s["photos"]) for s in seen]
    assert len(seen[0]["photos"]) == len(photos[0]) == 12 and not photos[0] & photos[1]
    assert len(photos[0] | photos[1]) == 24
    frames = [{tuple(x) for x in s["frames"]} for s in seen]
    assert len(frames[0]) == len(frames[1]) == 24 and not frames[0] & frames[1]
    assert len(frames[0] | frames[1]) == 4 * 12  # every frame of the 4 videos once
