"""metrics.json and a self-contained HTML report with plots, viewable offline.

Plots are inline SVG written here (matplotlib is not a dependency of the project): line
plots of a metric against the frame index, as in the paper's Fig. 7, histograms of per-pair
values, and the covariance spectra of two feature sets. Images are embedded as base64 PNG,
so `index.html` is one file that opens anywhere without a server or a network.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from PIL import Image

from deeplandscape import storage

__all__ = ["Section", "line_plot", "histogram", "spectrum_plot", "png_data_uri", "table", "write_report"]

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
_W, _H = 520, 300  # plot size in px
_LEFT, _RIGHT, _TOP, _BOTTOM = 64, 16, 28, 44  # margins


@dataclass
class Section:
    heading: str
    body: str  # HTML


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]."""
    if not math.isfinite(lo) or not math.isfinite(hi):
        return []
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if m * step >= raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.3g}" if v != 0 else "0"


class _Axes:
    """Data -> pixel mapping of one plot, with its frame, ticks and labels."""

    def __init__(self, xlim: tuple[float, float], ylim: tuple[float, float], log_y: bool = False):
        self.log_y = log_y
        (x0, x1), (y0, y1) = xlim, ylim
        if log_y:
            y0, y1 = math.log10(y0), math.log10(y1)
        pad_x = (x1 - x0) * 0.02 or 0.5
        pad_y = (y1 - y0) * 0.05 or (abs(y0) * 0.1 or 0.5)
        self.x0, self.x1, self.y0, self.y1 = x0 - pad_x, x1 + pad_x, y0 - pad_y, y1 + pad_y

    def px(self, x: float, y: float) -> tuple[float, float]:
        if self.log_y:
            y = math.log10(y)
        u = _LEFT + (x - self.x0) / (self.x1 - self.x0) * (_W - _LEFT - _RIGHT)
        v = _H - _BOTTOM - (y - self.y0) / (self.y1 - self.y0) * (_H - _TOP - _BOTTOM)
        return u, v

    def frame(self, title: str, xlabel: str, ylabel: str) -> list[str]:
        out = [f'<rect x="{_LEFT}" y="{_TOP}" width="{_W - _LEFT - _RIGHT}" height="{_H - _TOP - _BOTTOM}" '
               f'fill="none" stroke="#888"/>',
               f'<text x="{_W / 2}" y="16" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>',
               f'<text x="{(_LEFT + _W - _RIGHT) / 2}" y="{_H - 6}" text-anchor="middle">{html.escape(xlabel)}</text>',
               f'<text x="14" y="{(_TOP + _H - _BOTTOM) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 14 {(_TOP + _H - _BOTTOM) / 2})">{html.escape(ylabel)}</text>']
        for t in nice_ticks(self.x0, self.x1):
            u, _ = self.px(t, 10 ** self.y0 if self.log_y else self.y0)
            out.append(f'<text x="{u:.1f}" y="{_H - _BOTTOM + 14}" text-anchor="middle">{_fmt(t)}</text>')
        yticks = nice_ticks(self.y0, self.y1)
        if self.log_y:  # decades only
            yticks = [float(t) for t in range(math.ceil(self.y0), math.floor(self.y1) + 1)]
        for t in yticks:
            v = _H - _BOTTOM - (t - self.y0) / (self.y1 - self.y0) * (_H - _TOP - _BOTTOM)
            label = f"1e{t:g}" if self.log_y else _fmt(t)
            out.append(f'<text x="{_LEFT - 4}" y="{v + 4:.1f}" text-anchor="end">{label}</text>'
                       f'<line x1="{_LEFT}" x2="{_W - _RIGHT}" y1="{v:.1f}" y2="{v:.1f}" stroke="#eee"/>')
        return out


def _svg(parts: list[str]) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{_W}" height="{_H}" '
            f'viewBox="0 0 {_W} {_H}" font-family="sans-serif" font-size="11">' + "".join(parts) + "</svg>")


def _legend(names: Sequence[str]) -> list[str]:
    return [f'<text x="{_W - _RIGHT - 6}" y="{_TOP + 14 + 13 * i}" text-anchor="end" fill="{_COLOURS[i % len(_COLOURS)]}">'
            f"{html.escape(n)}</text>" for i, n in enumerate(names)]


def line_plot(series: dict[str, tuple[Sequence[float], Sequence[float]]], title: str, xlabel: str, ylabel: str,
              log_y: bool = False) -> str:
    """SVG of one line per series {name: (x, y)}; NaN points are left out."""
    pts = {k: [(float(x), float(y)) for x, y in zip(*v) if math.isfinite(float(y)) and (not log_y or y > 0)]
           for k, v in series.items()}
    allp = [p for v in pts.values() for p in v]
    if not allp:
        return _svg([f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle">{html.escape(title)}: no data</text>'])
    ax = _Axes((min(p[0] for p in allp), max(p[0] for p in allp)), (min(p[1] for p in allp), max(p[1] for p in allp)),
               log_y)
    parts = ax.frame(title, xlabel, ylabel)
    for i, (name, p) in enumerate(pts.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        xy = " ".join("{:.1f},{:.1f}".format(*ax.px(x, y)) for x, y in p)
        parts.append(f'<polyline class="series" fill="none" stroke="{colour}" stroke-width="1.8" points="{xy}"/>')
        if len(p) <= 40:
            parts += [f'<circle cx="{u:.1f}" cy="{v:.1f}" r="2.5" fill="{colour}"/>' for u, v in (ax.px(*q) for q in p)]
    return _svg(parts + (_legend(list(pts)) if len(pts) > 1 else []))


def histogram(values: dict[str, Sequence[float]], title: str, xlabel: str, bins: int = 30) -> str:
    """SVG of one outlined histogram per named set of values (NaNs left out)."""
    clean = {k: np.asarray([v for v in vs if math.isfinite(v)], dtype=np.float64) for k, vs in values.items()}
    allv = np.concatenate([v for v in clean.values()] or [np.zeros(0)])
    if allv.size == 0:
        return _svg([f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle">{html.escape(title)}: no data</text>'])
    lo, hi = float(allv.min()), float(allv.max())
    edges = np.linspace(lo, hi if hi > lo else lo + 1e-6, bins + 1)
    counts = {k: np.histogram(v, edges)[0] for k, v in clean.items()}
    ax = _Axes((edges[0], edges[-1]), (0.0, float(max(c.max() for c in counts.values()))))
    parts = ax.frame(title, xlabel, "count")
    for i, (name, c) in enumerate(counts.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        xy = []
        for k in range(bins):
            xy += [ax.px(edges[k], c[k]), ax.px(edges[k + 1], c[k])]
        pts = [ax.px(edges[0], 0), *xy, ax.px(edges[-1], 0)]
        parts.append(f'<polyline class="series" fill="{colour}" fill-opacity="0.25" stroke="{colour}" points="'
                     + " ".join(f"{u:.1f},{v:.1f}" for u, v in pts) + '"/>')
    return _svg(parts + (_legend(list(counts)) if len(counts) > 1 else []))


def spectrum_plot(covs: dict[str, np.ndarray], title: str = "covariance spectra") -> str:
    """Sorted eigenvalues of each feature covariance (log scale): how many directions each
    set spans; a set with fewer samples than dimensions shows a cliff at its rank."""
    series = {}
    for name, c in covs.items():
        ev = np.sort(np.clip(np.linalg.eigvalsh(np.asarray(c, np.float64)), 0, None))[::-1]
        keep = ev > ev[0] * 1e-12 if ev.size and ev[0] > 0 else np.zeros(ev.shape, bool)
        series[name] = (np.arange(ev.size)[keep], ev[keep])
    return line_plot(series, title, "eigenvalue rank", "eigenvalue", log_y=True)


def png_data_uri(image: np.ndarray) -> str:
    """uint8 [H, W, 3] or [H, W] -> ``data:image/png;base64,...``."""
    buf = io.BytesIO()
    Image.fromarray(np.asarray(image)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def table(rows: list[tuple[Any, Any]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(_cell(v))}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    return json.dumps(v) if isinstance(v, (dict, list)) else str(v)


_STYLE = """body{font-family:sans-serif;margin:24px;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}
th{background:#f4f4f4}.plot{margin:4px 12px 12px 0;border:1px solid #eee}img.pix{image-rendering:pixelated}
.note{color:#555;font-size:13px}"""


def write_report(out_dir: str, title: str, metrics: dict[str, Any], sections: list[Section]) -> dict[str, str]:
    """Write ``metrics.json`` and ``index.html`` under `out_dir` (a folder or s3:// prefix)."""
    metrics_uri = storage.join(str(out_dir), "metrics.json")
    storage.write_text(metrics_uri, json.dumps(_finite(metrics), indent=1, default=_json_default) + "\n")
    body = "".join(f"<h2>{html.escape(s.heading)}</h2>\n{s.body}\n" for s in sections)
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(title)}</h1>\n{body}"
            f"<p class='note'>All numbers are also in metrics.json next to this page.</p></body></html>\n")
    index_uri = storage.join(str(out_dir), "index.html")
    storage.write_text(index_uri, page)
    return {"metrics": metrics_uri, "report": index_uri}


def _finite(v: Any) -> Any:
    """NaN and infinities become null: metrics.json stays strict JSON."""
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_finite(x) for x in v]
    if isinstance(v, (float, np.floating)) and not math.isfinite(float(v)):
        return None
    return v


def _json_default(v: Any) -> Any:
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, os.PathLike):
        return str(v)
    raise TypeError(f"not JSON serialisable: {type(v)}")
