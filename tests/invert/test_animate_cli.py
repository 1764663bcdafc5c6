"""`deeplandscape animate` and `train-encoder` from the command line."""

from __future__ import annotations

import json
import shutil

import numpy as np
from PIL import Image

from deeplandscape.cli import main
from deeplandscape.video import probe_video, read_video


def test_animate_a_folder_with_a_bad_file_and_a_portrait_photo(tmp_path, tiny_run, synth_data, capsys):
    photos = tmp_path / "in"
    photos.mkdir()
    for src in sorted((synth_data / "photos").glob("0000[01].png")):
        shutil.copy(src, photos / src.name)
        shutil.copy(src.with_suffix(".mask.png"), photos / (src.stem + ".mask.png"))
    (photos / "notes.jpg").write_text("not a photo")
    portrait = np.asarray(Image.open(synth_data / "photos" / "00002.png"))[:, 16:48]  # 64 tall, 32 wide
    Image.fromarray(portrait).save(photos / "portrait.png")
    out = tmp_path / "out"
    code = main(["animate", str(photos), "--run-dir", str(tiny_run), "--out", str(out), "--directions", "2",
                 "--frames", "6", "--fit", "pad", "--set", "invert.opt_steps=5", "--set", "invert.finetune_steps=5"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["photos"] == 4 and summary["animated"] == 3
    assert len(summary["failed"]) == 1 and "notes.jpg" in summary["failed"][0]["error"]
    for name in ("00000", "00001", "portrait"):
        videos = sorted((out / name).glob("*.mp4"))
        assert len(videos) == 2 and all((v.with_suffix(".jpg")).is_file() for v in videos)
        info = probe_video(videos[0])
        assert info.num_frames == 6
        meta = json.loads((out / name / "inversion.json").read_text())
        assert meta["method"] == ("EOIFS" if name != "portrait" else "EOIF")
        assert (out / name / "compare.png").is_file()
    info = probe_video(next((out / "portrait").glob("*.mp4")))
    assert info.height == 32 and info.width == 16  # the 32 px square, cropped back to the photo's 1:2
    frames, _ = read_video(next((out / "00000").glob("*.mp4")))
    assert frames.shape == (6, 32, 32, 3)
