"""The demo end to end (with a very short schedule): its gallery shows playable videos."""

from __future__ import annotations

import re

from deeplandscape.demo import run_demo
from deeplandscape.video import probe_video


def test_demo_gallery_has_playable_videos(local_ray, tmp_path):
    index = run_demo(tmp_path / "demo", "tiny", {"train.total_kimg": "0.16", "train.batch": '{"8": 16}',
                                                 "train.sample_kimg": "0.08", "train.log_every": "5",
                                                 "invert.encoder_kimg": "0.064", "invert.encoder_batch": "16",
                                                 "invert.opt_steps": "5", "invert.finetune_steps": "5",
                                                 "invert.lighting_steps": "40", "invert.lighting_log_every": "20"},
                     log=lambda line: None)
    page = index.read_text()
    videos = re.findall(r'<video src="([^"]+\.mp4)"', page)
    samples = [v for v in videos if v.startswith("samples/")]
    assert len(samples) >= 4
    for v in samples:
        info = probe_video(index.parent / v)
        assert info.num_frames == 90 and info.width == info.height == 128  # 8 px model shown at x16
    animated = [v for v in videos if v.startswith("animated/")]
    assert len(animated) == 4 * 2  # four photos, two homographies each
    assert all(probe_video(index.parent / v).num_frames == 60 for v in animated)
    lit = [v for v in videos if v.startswith("lighting/")]
    assert len(lit) == 1 and probe_video(index.parent / lit[0]).num_frames == 90  # day to night
    images = re.findall(r'<img src="([^"]+)"', page)
    assert sum(i.endswith("compare.png") for i in images) == 4
    assert all((index.parent / i).is_file() for i in images)
    assert any("grid-" in i for i in images)  # training snapshots
