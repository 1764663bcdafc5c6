"""`deeplandscape evaluate animation`: the paper's animation protocol (Fig. 7) on the tiny run."""

from __future__ import annotations

import json

import numpy as np

from deeplandscape.cli import main
from deeplandscape.data.synth import write_dataset
from deeplandscape.invert.animate_photos import pick_directions
from deeplandscape.video import probe_video, read_video


def test_animation_protocol_animates_first_frames_and_compares_them(local_ray, eval_env, image_stand_ins, tiny_run,
                                                                    tmp_path, capsys):
    real = tmp_path / "real"
    write_dataset(real, images=0, videos=2, frames=10, size=64, seed=9)  # 64 px videos + sky/water masks
    (real / "videos" / "broken.mp4").write_text("not a video")
    out = tmp_path / "out"
    assert main(["evaluate", "animation", "--run-dir", str(tiny_run), "--real-videos", str(real / "videos"),
                 "--frames", "6", "--every", "2", "--out", str(out), "--workers", "1", "--directions", "2",
                 "--set", "invert.opt_steps=3", "--set", "invert.finetune_steps=3"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert (m["videos"], m["animated"]) == (3, 2)
    assert [f["input"].endswith("broken.mp4") for f in m["failed"]] == [True]
    curves = m["curves"]
    assert curves["frames"] == [0, 2, 4]
    assert curves["videos"] == {"a": 2, "b": 4, "pairs": 4, "pairs_with_mask": 4}
    assert all(v is not None and v > 0 for v in curves["lpips"] + curves["fid"])
    assert all(0 < v < 1 for v in curves["ssim"])
    assert m["lpips"] == np.mean(curves["lpips"])
    # Both sides at the model's resolution, the real one cut from the real video's first frames.
    real_frames, _ = read_video(next((out / "real").glob("*.mp4")))
    assert real_frames.shape == (6, 32, 32, 3)
    generated = sorted((out / "generated").glob("*.mp4"))
    # Two homographies per video (the paper: five), each video its own pair, drawn from its name.
    assert [p.name for p in generated] == sorted(f"{v}-{d}.mp4" for v in ("00000", "00001")
                                                 for d in pick_directions(v, 2))
    assert all(probe_video(p).num_frames == 6 and probe_video(p).width == 32 for p in generated)
    assert {v["method"] for v in m["inversion"].values()} == {"EOIFS"}  # the videos' masks came along
    page = (out / "index.html").read_text()
    assert page.count("<svg") >= 3 and "broken.mp4" in page
    printed = capsys.readouterr().out
    assert "LPIPS" in printed and "left out" in printed


def test_animation_protocol_without_videos_says_so(local_ray, eval_env, image_stand_ins, tiny_run, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["evaluate", "animation", "--run-dir", str(tiny_run), "--real-videos", str(tmp_path / "empty"),
                 "--out", str(tmp_path / "out")]) == 2
    assert f"no videos (.mp4, .mov, ...) under {tmp_path / 'empty'}" in capsys.readouterr().err
