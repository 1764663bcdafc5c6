"""What every sweep does around Ray Tune: start or resume the Tuner, then turn its results into
a table (printed, CSV, Parquet), the best settings as a config preset (TOML), and an HTML page
that plots the objective against each hyperparameter (inline SVG, like evaluate/report.py).

A sweep lives in ``STORAGE/NAME`` (a folder or an s3:// prefix): Tune's own state, ``sweep.json``
(the settings it was started with) and whatever the trials write there. Running the same
command again resumes it (`Tuner.restore`): finished trials stay, interrupted or failed ones
go on. A different command on the same name is refused, so an old sweep is never resumed by
accident.
"""

from __future__ import annotations

import csv
import html
import io
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from deeplandscape import storage
from deeplandscape.evaluate import report
from deeplandscape.raykit import ray_storage

OBJECTIVE = "objective"  # every sweep reports this metric; lower is better
FINISHED = "finished"  # 1 in a trial's last report when it ran to its end (not stopped by ASHA)


# ---------------------------------------------------------------- running or resuming

class NoResultError(RuntimeError):
    """The sweep ran, but no trial reported its objective."""


def sweep_dir(storage_root: str, name: str) -> str:
    """Where a sweep's state and trial outputs live; local roots are made absolute (Tune needs it)."""
    if not name or "/" in name:
        raise ValueError(f"--name must be a plain folder name, got {name!r}")
    root = storage_root if storage.is_remote(storage_root) else storage.resolve(storage_root)[1]
    return storage.join(root, name)


def check_or_record_settings(path: str, settings: dict[str, Any], log=print) -> None:
    """Write ``sweep.json`` (the settings a sweep was started with). A sweep that Tune has
    started under this name may only be resumed with the same settings; one that never got
    that far (it failed while checking its inputs) takes the new ones."""
    uri = storage.join(path, "sweep.json")
    new = json.loads(json.dumps(settings, sort_keys=True, default=str))
    if storage.exists(uri):
        old = json.loads(storage.read_text(uri))
        if old == new:
            return
        if tune_state_exists(path):
            changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
            raise ValueError(f"{path} holds a sweep started with other settings ({', '.join(changed)} differ; "
                             f"see {uri}); use another --name, or the same arguments to resume it")
        log(f"{path}: replacing the settings of a sweep that never started")
    storage.write_text(uri, json.dumps(new, indent=1, sort_keys=True))


def _tune_path(path: str) -> tuple[str, Any]:
    """(path as Tune takes it, filesystem or None) for a local folder or an s3:// prefix."""
    if not storage.is_remote(path):
        return path, None
    fs, inner = storage.resolve(path)
    return inner, fs


def tune_state_exists(path: str) -> bool:
    from ray import tune

    inner, fs = _tune_path(path)
    return tune.Tuner.can_restore(inner, storage_filesystem=fs)


def run_tuner(trainable, param_space: dict[str, Any], tune_config, path: str, log=print):
    """Run the sweep in `path`, or resume it when Tune's state is there. Returns the ResultGrid."""
    from ray import tune

    root, name = path.rsplit("/", 1)
    where = ray_storage(root)
    restore_path, fs = _tune_path(path)
    if tune_state_exists(path):
        log(f"resuming the sweep in {path}: finished trials are kept, interrupted and failed ones go on")
        tuner = tune.Tuner.restore(restore_path, trainable, resume_unfinished=True, resume_errored=True,
                                   storage_filesystem=fs)
    else:
        # verbose=0: Tune's status tables stay off the terminal; `_ProgressLines` says what matters.
        tuner = tune.Tuner(trainable, param_space=param_space, tune_config=tune_config,
                           run_config=tune.RunConfig(name=name, verbose=0, callbacks=[_progress_lines()],
                                                     **where))
    return tuner.fit()


def _say(line: str) -> None:
    print(line, flush=True)


def _progress_lines():
    """A Tune callback (it runs on the driver) printing one line per trial report and end.

    Tune pickles its callbacks with the experiment state: the class holds no function of the
    caller's (Ray Train replaces `print` in the driver, so a captured one no longer pickles by
    name), only calls to this module's `_say`."""
    from ray import tune

    class ProgressLines(tune.Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):
            clock = "  ".join(f"{k} {result[k]:g}" for k in ("kimg", "steps") if _number(result.get(k)) is not None)
            objective = _number(result.get(OBJECTIVE))
            _say(f"trial {trial.trial_id}: {clock}  objective {objective:.4g}" if objective is not None
                 else f"trial {trial.trial_id}: {clock}")

        def on_trial_complete(self, iteration, trials, trial, **info):
            _say(f"trial {trial.trial_id}: ended")

        def on_trial_error(self, iteration, trials, trial, **info):
            _say(f"trial {trial.trial_id}: failed (its error is in the results table and Tune's trial folder)")

    return ProgressLines()


# ---------------------------------------------------------------- the results table

@dataclass
class Sweep:
    """What the table, preset and page need to know about a sweep's results."""

    title: str
    params: list[str]  # swept config keys, dotted ("train.p_pair_start")
    metrics: list[str]  # reported values shown next to the objective
    time_attr: str  # ASHA's clock: "kimg" or "steps"
    objective_doc: str  # how the objective is made, for the page
    space_doc: dict[str, str] = field(default_factory=dict)  # swept key -> its distribution (describe_space)
    rows: list[dict[str, Any]] = field(default_factory=list)
    curves: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)  # trial -> (time, objective)


def _number(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def collect(results, sweep: Sweep) -> Sweep:
    """One row per trial (best objective first, failed trials last) and each trial's curve."""
    rows = []
    for r in results:
        m = dict(r.metrics or {})
        trial = m.get("trial_id") or Path(str(r.path)).name
        history = r.metrics_dataframe
        xs, ys = [], []
        if history is not None and OBJECTIVE in history and sweep.time_attr in history:
            for t, o in zip(history[sweep.time_attr], history[OBJECTIVE]):
                if _number(t) is not None and _number(o) is not None:
                    xs.append(float(t))
                    ys.append(float(o))
        if r.error is not None:
            status = "error"
        elif m.get(FINISHED):
            status = "finished"
        elif m:
            status = "stopped early"
        else:
            status = "no report"
        row = {"trial": trial, "status": status, **{p: r.config.get(p) for p in sweep.params},
               sweep.time_attr: _number(m.get(sweep.time_attr)), "reports": int(m.get("training_iteration") or 0),
               **{k: _number(m.get(k)) for k in sweep.metrics},
               OBJECTIVE: _number(m.get(OBJECTIVE)), "best_objective": min(ys) if ys else None,
               "error": "" if r.error is None else str(r.error).strip().splitlines()[-1][:300]}
        rows.append(row)
        sweep.curves[trial] = (xs, ys)
    rows.sort(key=lambda row: (row["status"] == "error", row[OBJECTIVE] is None,
                               row[OBJECTIVE] if row[OBJECTIVE] is not None else 0.0))
    sweep.rows = rows
    return sweep


def best_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The lowest final objective among trials that ran to their end; among all trials with an
    objective when none did (a stopped trial's value is from earlier in its run)."""
    finished = [r for r in rows if r["status"] == "finished" and r[OBJECTIVE] is not None]
    pool = finished or [r for r in rows if r[OBJECTIVE] is not None]
    if not pool:
        errors = "; ".join(f"{r['trial']}: {r['error']}" for r in rows if r["error"]) or "no trial reported"
        raise NoResultError(f"no trial reported an objective ({errors})")
    return min(pool, key=lambda r: r[OBJECTIVE])


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def short(key: str) -> str:
    """"train.p_pair_start" -> "p_pair_start" (column headings)."""
    return key.split(".", 1)[-1]


def columns(sweep: Sweep) -> list[str]:
    return ["trial", "status", *sweep.params, sweep.time_attr, "reports", *sweep.metrics, OBJECTIVE]


def format_table(sweep: Sweep) -> str:
    """The results as aligned text, best first."""
    cols = columns(sweep)
    cells = [[short(c) for c in cols]] + [[_fmt(row.get(c)) for c in cols] for row in sweep.rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cols))]
    lines = ["  ".join(c.rjust(w) if k else c.ljust(w) for k, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    errors = [f"  {row['trial']}: {row['error']}" for row in sweep.rows if row["error"]]
    return "\n".join(lines + (["errors:"] + errors if errors else []))


def markdown_table(sweep: Sweep) -> str:
    """The results as a Markdown table (for docs)."""
    cols = columns(sweep)
    out = ["| " + " | ".join(short(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_fmt(row.get(c)) for c in cols) + " |" for row in sweep.rows]
    return "\n".join(out)


def write_table(sweep: Sweep, out_dir: str) -> dict[str, str]:
    """``results.csv`` and ``results.parquet`` (every column, full config keys)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = list(sweep.rows[0]) if sweep.rows else columns(sweep)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=cols)
    writer.writeheader()
    writer.writerows({c: row.get(c) for c in cols} for row in sweep.rows)
    csv_uri = storage.join(out_dir, "results.csv")
    storage.write_text(csv_uri, buf.getvalue())
    table = pa.Table.from_pylist([{c: row.get(c) for c in cols} for row in sweep.rows])
    sink = io.BytesIO()
    pq.write_table(table, sink)
    parquet_uri = storage.join(out_dir, "results.parquet")
    storage.write_bytes(parquet_uri, sink.getvalue())
    return {"csv": csv_uri, "parquet": parquet_uri}


# ---------------------------------------------------------------- the best settings as a preset

def _toml_value(v: Any, key: str) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # a TOML basic string
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml_value(x, key)}" for k, x in v.items()) + " }"
    raise ValueError(f"cannot write {key} = {v!r} to a preset")


def preset_text(keys: dict[str, Any], comment: str) -> str:
    """A preset in configs/ style: dotted keys grouped into [sections], after a # comment."""
    sections: dict[str, dict[str, Any]] = {}
    for key, value in keys.items():
        section, _, name = key.partition(".")
        sections.setdefault(section, {})[name] = value
    lines = [f"# {line}" if line else "#" for line in comment.strip().splitlines()]
    for section, values in sections.items():
        lines += ["", f"[{section}]"]
        lines += [f"{name} = {_toml_value(v, f'{section}.{name}')}" for name, v in values.items()]
    return "\n".join(lines) + "\n"


def plain(value: Any) -> Any:
    """numpy scalars from Tune's samplers -> Python numbers."""
    return value.item() if hasattr(value, "item") else value


def example_value(domain: Any) -> Any:
    """A value a search-space entry can take (to check it against the config before starting)."""
    if isinstance(domain, dict) and "grid_search" in domain:
        return plain(domain["grid_search"][0])
    return plain(domain.sample() if hasattr(domain, "sample") else domain)


def describe_space(space: dict[str, Any]) -> dict[str, str]:
    """A readable line per swept key (sweep.json, the page)."""
    out = {}
    for key, domain in space.items():
        if isinstance(domain, dict) and "grid_search" in domain:
            out[key] = f"grid {[plain(v) for v in domain['grid_search']]}"
        elif hasattr(domain, "domain_str"):
            sampler = type(domain.get_sampler()).__name__.strip("_").lower()
            out[key] = f"{type(domain).__name__.lower()} {domain.domain_str} {sampler}"
        else:
            out[key] = repr(domain)
    return out


# ---------------------------------------------------------------- the page

_W, _H, _L, _R, _T, _B = 360, 240, 56, 12, 26, 46
_STATUS_COLOURS = {"finished": "#1f77b4", "stopped early": "#ff7f0e", "error": "#d62728", "no report": "#999"}


def scatter_plot(points: Sequence[tuple[Any, float, str]], title: str, xlabel: str, ylabel: str = OBJECTIVE) -> str:
    """SVG of the objective (y) against one hyperparameter (x), one dot per trial, coloured by
    status. Numeric x on a linear axis (log when it spans more than a factor of 20 and is
    positive); anything else (a mode, a switch) as categories."""
    pts = [(x, float(y), s) for x, y, s in points if _number(y) is not None]
    numeric = all(_number(x) is not None and not isinstance(x, bool) for x, _, _ in pts)
    if not pts:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{_W}" height="{_H}">'
                f'<text x="{_W / 2}" y="{_H / 2}" text-anchor="middle">{html.escape(title)}: no data</text></svg>')
    if numeric:
        xs = [float(x) for x, _, _ in pts]
        log_x = min(xs) > 0 and max(xs) / min(xs) > 20
        tx = (lambda v: math.log10(v)) if log_x else (lambda v: v)  # noqa: E731
        x0, x1 = tx(min(xs)), tx(max(xs))
        labels = None
    else:
        labels = sorted({_fmt(x) for x, _, _ in pts})
        tx = lambda v: float(labels.index(_fmt(v)))  # noqa: E731
        x0, x1, log_x = -0.5, len(labels) - 0.5, False
    ys = [y for _, y, _ in pts]
    y0, y1 = min(ys), max(ys)
    px_ = (x1 - x0) * 0.06 or 0.5
    py_ = (y1 - y0) * 0.08 or (abs(y0) * 0.1 or 0.5)
    x0, x1, y0, y1 = x0 - px_, x1 + px_, y0 - py_, y1 + py_

    def u(v: float) -> float:
        return _L + (v - x0) / (x1 - x0) * (_W - _L - _R)

    def w(v: float) -> float:
        return _H - _B - (v - y0) / (y1 - y0) * (_H - _T - _B)

    parts = [f'<rect x="{_L}" y="{_T}" width="{_W - _L - _R}" height="{_H - _T - _B}" fill="none" stroke="#888"/>',
             f'<text x="{_W / 2}" y="16" text-anchor="middle" font-weight="bold">{html.escape(title)}</text>',
             f'<text x="{(_L + _W - _R) / 2}" y="{_H - 6}" text-anchor="middle">{html.escape(xlabel)}'
             f'{" (log)" if log_x else ""}</text>',
             f'<text x="12" y="{(_T + _H - _B) / 2}" text-anchor="middle" '
             f'transform="rotate(-90 12 {(_T + _H - _B) / 2})">{html.escape(ylabel)}</text>']
    xticks = [(float(i), name) for i, name in enumerate(labels)] if labels else \
        [(t, _fmt(10 ** t if log_x else t)) for t in report.nice_ticks(x0, x1, 4)]
    for t, name in xticks:
        parts.append(f'<text x="{u(t):.1f}" y="{_H - _B + 14}" text-anchor="middle">{html.escape(name)}</text>')
    for t in report.nice_ticks(y0, y1, 4):
        parts.append(f'<text x="{_L - 4}" y="{w(t) + 4:.1f}" text-anchor="end">{_fmt(t)}</text>'
                     f'<line x1="{_L}" x2="{_W - _R}" y1="{w(t):.1f}" y2="{w(t):.1f}" stroke="#eee"/>')
    for x, y, s in pts:
        parts.append(f'<circle class="trial" cx="{u(tx(x)):.1f}" cy="{w(y):.1f}" r="4" fill-opacity="0.8" '
                     f'fill="{_STATUS_COLOURS.get(s, "#999")}"><title>{html.escape(f"{_fmt(x)}: {y:.4g} ({s})")}'
                     f'</title></circle>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="{_W}" height="{_H}" '
            f'viewBox="0 0 {_W} {_H}" font-family="sans-serif" font-size="11">' + "".join(parts) + "</svg>")


def _html_table(sweep: Sweep) -> str:
    cols = columns(sweep)
    head = "".join(f"<th>{html.escape(short(c))}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(row.get(c)))}</td>" for c in cols) + "</tr>"
                   for row in sweep.rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_page(sweep: Sweep, out_dir: str, best: dict[str, Any], outputs: dict[str, str]) -> dict[str, str]:
    """``index.html`` (table, objective vs each hyperparameter, objective over time per trial)
    and ``metrics.json`` (the same numbers) under `out_dir`."""
    legend = " ".join(f"<span style='color:{c}'>&#9679; {s}</span>" for s, c in _STATUS_COLOURS.items())
    scatters = "".join(scatter_plot([(row.get(p), row.get(OBJECTIVE), row["status"]) for row in sweep.rows],
                                    f"objective vs {short(p)}", short(p)) for p in sweep.params)
    curves = report.line_plot({t: c for t, c in sweep.curves.items() if c[0]}, "objective as trials ran",
                              sweep.time_attr, OBJECTIVE)
    summary = report.table([("best trial", best["trial"]), ("best objective", best[OBJECTIVE]),
                            *((short(p), best.get(p)) for p in sweep.params),
                            ("trials", len(sweep.rows)),
                            *((s, sum(r["status"] == s for r in sweep.rows)) for s in _STATUS_COLOURS),
                            *outputs.items()])
    sections = [
        report.Section("Best", summary + f"<p class='note'>{html.escape(sweep.objective_doc)}</p>"),
        report.Section("Objective vs each hyperparameter (final value of each trial)",
                       f"<p class='note'>{legend}. A stopped trial's value is from when ASHA stopped it.</p>"
                       + scatters),
        report.Section("Objective as the trials ran", curves),
        report.Section("Search space", report.table(list(sweep.space_doc.items()))),
        report.Section("All trials", _html_table(sweep)),
    ]
    metrics = {"title": sweep.title, "objective": sweep.objective_doc, "space": sweep.space_doc, "best": best,
               "rows": sweep.rows,
               "time_attr": sweep.time_attr, "outputs": outputs,
               "curves": {t: {sweep.time_attr: xs, OBJECTIVE: ys} for t, (xs, ys) in sweep.curves.items()}}
    return report.write_report(out_dir, sweep.title, metrics, sections)


def finish(results, sweep: Sweep, out_dir: str, preset: Callable[[dict[str, Any]], str], log=print) -> dict[str, Any]:
    """Table (printed, CSV, Parquet), best preset (``best.toml``) and page, all under `out_dir`."""
    collect(results, sweep)
    log(format_table(sweep))
    best = best_row(sweep.rows)
    outputs = write_table(sweep, out_dir)
    outputs["preset"] = storage.join(out_dir, "best.toml")
    storage.write_text(outputs["preset"], preset(best))
    outputs.update(write_page(sweep, out_dir, best, dict(outputs)))
    log(f"best: trial {best['trial']}, objective {best[OBJECTIVE]:.4g}: "
        + ", ".join(f"{short(p)}={_fmt(best[p])}" for p in sweep.params))
    log("wrote " + ", ".join(f"{k} {v}" for k, v in outputs.items()))
    return {"sweep": sweep, "best": best, "outputs": outputs}


def command(prog: str, samples: int, sweep: Callable[[], Any]) -> int:
    """The exit code of a tune/ script: 0 when the sweep ran; 2, with the reason, for bad input;
    1 when no trial reported an objective."""
    try:
        if samples < 1:
            raise ValueError(f"--samples must be >= 1, got {samples}")
        sweep()
    except (ValueError, FileNotFoundError) as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2
    except NoResultError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    return 0


def add_sweep_args(p, name: str, samples: int, storage_default: str | None, set_example: str) -> None:
    """The arguments every tune/ script takes (`storage_default` None: --storage is required)."""
    p.add_argument("--storage", required=storage_default is None, default=storage_default,
                   help="folder or s3:// prefix; the sweep lives in STORAGE/NAME")
    p.add_argument("--name", default=name, help="the sweep's name: the same name resumes it")
    p.add_argument("--samples", type=int, default=samples, help="trials")
    p.add_argument("--max-concurrent", type=int, default=0, help="trials at once (default: what the cluster holds)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help=f"a value for every trial, e.g. --set {set_example} (repeatable)")
    p.add_argument("--out", default="", help="local folder for the table, best.toml and index.html "
                                             "(default: sweeps/NAME)")
