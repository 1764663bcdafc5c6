"""The embedded default: synthetic data -> training on local Ray -> samples -> a gallery."""

from __future__ import annotations

import html
import json
import time
from pathlib import Path


from deeplandscape.config import load_config
from deeplandscape.data.synth import is_mask_file, write_dataset
from deeplandscape.invert.animate_photos import animate_photos
from deeplandscape.invert.encoder import train_encoder
from deeplandscape.invert.lighting import train_lighting
from deeplandscape.raykit import ensure_ray
from deeplandscape.render import VideoOutputs
from deeplandscape.runs import load_model
from deeplandscape.sample import write_samples
from deeplandscape.train.launch import train


def run_demo(out: Path, preset: str = "tiny", overrides: dict | None = None, log=print) -> Path:
    """Run the whole pipeline into `out` and return the path of `out/index.html`."""
    out = out.resolve()
    t0 = time.perf_counter()
    data = out / "data"
    if not (data / "synth.json").exists():
        write_dataset(data, images=256, videos=32, frames=32, size=64, seed=0)
        log(f"[demo] synthetic landscapes in {data}")
    cfg = load_config(preset, {"data.images": str(data / "photos"), "data.videos": str(data / "videos"),
                               **(overrides or {})})
    run_dir = out / "run"
    ensure_ray(log)
    train(cfg, str(run_dir), log=log)
    t_train = time.perf_counter() - t0
    model = load_model(str(run_dir))
    scale = max(1, 128 // model.resolution)
    summary = write_samples(model, out / "samples", videos=8, frames=90, seed=0, direction="random", speed=2.5,
                            outputs=VideoOutputs(fps=30, scale=scale))
    animated = animate_demo_photos(out, str(run_dir), model.cfg, scale, log)
    index = write_gallery(out, summary, run_dir, data, animated)
    log(f"[demo] done in {time.perf_counter() - t0:.0f} s (training {t_train:.0f} s)")
    return index


def animate_demo_photos(out: Path, run_dir: str, cfg, scale: int, log=print) -> dict:
    """Train the encoder, then bring four unseen synthetic photos to life (EOIFS, their masks)."""
    train_encoder(cfg, run_dir, log=log)
    photos = out / "photos-to-animate"
    if not (photos / "synth.json").exists():
        write_dataset(photos, images=4, videos=0, frames=2, size=64, seed=12345)  # scenes not in the training set
    animated = animate_photos([str(photos / "photos")], run_dir, str(out / "animated"), homographies=2, frames=60,
                              outputs=VideoOutputs(fps=30, scale=scale), log=log)
    # Lighting (paper 3.2): train A from the mapping network, then one photo from day to night.
    train_lighting(cfg, run_dir, log=log)
    first = sorted(p for p in (photos / "photos").glob("*.png") if not is_mask_file(p))[0]
    animated["lighting"] = animate_photos([str(first)], run_dir, str(out / "lighting"), homographies=1, frames=90,
                                          outputs=VideoOutputs(fps=30, scale=scale), log=log,
                                          lighting="day-to-night")
    return animated


def write_gallery(out: Path, summary: dict, run_dir: Path, data: Path, animated: dict | None = None) -> Path:
    """A static `index.html`: sampled videos, the sample grid, training snapshots, real data."""
    rel = lambda p: html.escape(str(Path(p).resolve().relative_to(out)))  # noqa: E731
    videos = "\n".join(
        f'<figure><video src="{rel(v)}" autoplay loop muted playsinline width="256"></video>'
        f"<figcaption>{html.escape(Path(v).name)}</figcaption></figure>" for v in summary["videos"])
    snapshots = "\n".join(
        f'<figure><img src="{rel(p)}" width="384"><figcaption>{html.escape(p.stem)}</figcaption></figure>'
        for p in sorted((run_dir / "samples").glob("grid-*.png")))
    photos = "\n".join(f'<img src="{rel(p)}" width="96">' for p in sorted((data / "photos").glob("0000?.png")))
    real_videos = "\n".join(
        f'<video src="{rel(p)}" autoplay loop muted playsinline width="128"></video>'
        for p in sorted((data / "videos").glob("*.mp4"))[:4])
    inverted = "\n".join(
        f'<figure><img src="{rel(next(p for p in r["outputs"] if p.endswith("compare.png")))}" width="384">'
        + "".join(f'<video src="{rel(p)}" autoplay loop muted playsinline width="128"></video>'
                  for p in r["outputs"] if p.endswith(".mp4"))
        + f'<figcaption>{html.escape(Path(r["input"]).name)}: {html.escape(r["method"])}, L1 '
        + " &rarr; ".join(f"{v[0]:.3f}" for v in r["losses"].values()) + "</figcaption></figure>"
        for r in (animated or {}).get("results", []))
    lighting = "\n".join(
        f'<figure><video src="{rel(p)}" autoplay loop muted playsinline width="256"></video>'
        f"<figcaption>{html.escape(Path(r['input']).name)}: day &rarr; sunset &rarr; night</figcaption></figure>"
        for r in (animated or {}).get("lighting", {}).get("results", []) for p in r["outputs"] if p.endswith(".mp4"))
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    last = metrics[-1] if metrics else {}
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>DeepLandscape demo</title>
<style>body{{font-family:sans-serif;margin:2em;background:#111;color:#eee}}
figure{{display:inline-block;margin:.5em}} video,img{{image-rendering:pixelated;background:#000}}
h2{{margin-top:1.5em}} code{{color:#9cf}}</style></head><body>
<h1>DeepLandscape demo</h1>
<p>A tiny {summary['resolution']} px model trained for {summary['kimg']:.1f} kimg on procedural landscapes
({last.get('step', '?')} steps). Each video keeps the static latents z<sub>st</sub>, S<sub>st</sub> fixed,
interpolates z<sub>dyn</sub> and moves S<sub>dyn</sub> with one of the 12 clock homographies
(mirrored below the horizon). Checkpoint: <code>{html.escape(summary['checkpoint'])}</code></p>
<h2>Sampled time-lapses</h2>{videos}
<h2>Photos brought to life</h2><p>Photos the model never saw, inverted with E, O, L<sub>init</sub>, fine-tuning
and their sky + water masks (EOIFS, paper 3.2): input | reconstruction | first frame, then two time-lapses.</p>
{inverted}
<h2>Lighting: day to night</h2><p>The lighting network A (paper 3.2) moves the photo's styles towards the
sunset and night keyframes of the tiny model as the video goes on, while the clouds move.</p>
{lighting}
<h2>Sample grid</h2><p>One row per video, frames left to right.</p><img src="{rel(summary['grid'])}" width="768">
<h2>Training snapshots</h2>{snapshots}
<h2>Training data (synthetic)</h2>{photos}<br>{real_videos}
</body></html>
"""
    index = out / "index.html"
    index.write_text(page)
    return index
