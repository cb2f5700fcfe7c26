"""The report as one HTML page: every image inlined as a data URI, no script or style from elsewhere.

Every piece of text from a run (paths, config values, sampler names, messages) goes
through :func:`esc`; the page's Content-Security-Policy allows images from data URIs
only, so a page that works here works offline. A small inline script marks
``<body data-images="ok:N">`` once every image has loaded (``broken:K`` otherwise): what
the browser test reads, and harmless to a reader.
"""

from __future__ import annotations

import base64
import html
import json
import math
import statistics
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .charts import Series, line_chart
from .collect import EvalTable, Restoration, RunRecord

__all__ = ["render", "esc", "Strip"]

Strip = tuple[bytes | None, str]  # the corruption strip's PNG (None when it could not be drawn) and its caption
MAX_PREVIEWS = 16  # previews shown per run; more are subsampled evenly, the last one always kept
CURVES = (("loss", "loss", True), ("lr", "learning rate", False), ("grad_norm", "gradient norm", True))

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1180px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 2px solid #ccc; margin-top: 2em; } h3 { margin-top: 1.4em; }
table { border-collapse: collapse; margin: .5em 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ccc; padding: 2px 8px; text-align: right; } th { background: #f3f3f3; }
td.text, th.text { text-align: left; }
.charts, .timeline, .strips { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; }
figure { margin: 0; } figcaption { font-size: 12px; color: #555; text-align: center; }
.missing { background: #fff6e0; border-left: 4px solid #e0a000; padding: .3em 1em; }
.summary td:first-child { text-align: left; font-weight: 600; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: 12px; }
img.pixels { image-rendering: pixelated; }
.timeline img, .samples img { width: 242px; }
"""

SCRIPT = """
window.addEventListener("load", function () {
  var images = Array.prototype.slice.call(document.images);
  var broken = images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); });
  document.body.setAttribute("data-images", broken.length ? "broken:" + broken.length : "ok:" + images.length);
});
"""

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def esc(value: object) -> str:
    """Text for HTML, attributes included."""
    return html.escape(str(value), quote=True)


def number(value: object, digits: int = 2) -> str:
    """``value`` with ``digits`` decimals; ``-`` for a missing or non-finite one."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}f}"


def significant(value: object, digits: int = 5) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    return f"{value:.{digits}g}"


def image(data: bytes, mime: str, alt: str, css: str = "") -> str:
    encoded = base64.b64encode(data).decode()
    cls = f' class="{css}"' if css else ""
    return f'<img{cls} alt="{esc(alt)}" src="data:{mime};base64,{encoded}">'


def figure(data: bytes, mime: str, caption: str, css: str = "") -> str:
    return f"<figure>{image(data, mime, caption, css)}<figcaption>{esc(caption)}</figcaption></figure>"


def table(headers: Sequence[str], rows: Iterable[Sequence[tuple[str, str]]], css: str = "") -> str:
    """Rows of ``(cell class, already escaped text)``; a header that is not numeric is left-aligned."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f'<td class="{c}">{t}</td>' for c, t in row) + "</tr>" for row in rows)
    cls = f' class="{css}"' if css else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(records: Sequence[RunRecord], strips: dict[str, Strip]) -> str:
    """The whole page for one run, or several side by side (differences and shared axes first)."""
    title = records[0].name if len(records) == 1 else " vs ".join(r.name for r in records)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        f"<title>softdiff report: {esc(title)}</title><style>{STYLE}</style>",
        f"<script>{SCRIPT}</script></head><body>",
        f"<h1>softdiff report: {esc(title)}</h1>",
    ]
    if len(records) > 1:
        parts.append(_comparison(records))
    for record in records:
        parts.append(_run_section(record, strips.get(record.name, (None, "not drawn"))))
    parts.append("</body></html>")
    return "\n".join(parts)


# --- one run -------------------------------------------------------------------------------------------------


def _run_section(record: RunRecord, strip: Strip) -> str:
    parts = [
        f'<section class="run" data-run="{esc(record.name)}"><h2>{esc(record.name)}</h2>',
        f'<p class="path">{esc(record.path.resolve())}</p>',
        _summary(record),
    ]
    if record.missing:
        items = "".join(f"<li>{esc(m)}</li>" for m in record.missing)
        parts.append(f'<div class="missing"><h3>Not in this run folder</h3><ul>{items}</ul></div>')
    parts.append(_strip(record, strip))
    parts.append(_curves([record]))
    parts.append(_previews(record))
    parts.append(_samples(record))
    parts += [_eval(record, table_) for table_ in record.evals]
    parts += [_restoration(record, r) for r in record.restorations]
    config = json.dumps(record.config_data, indent=2)
    parts.append(f"<h3>Resolved config</h3><details><summary>config.json</summary><pre>{esc(config)}</pre></details>")
    parts.append("</section>")
    return "\n".join(parts)


def _summary(record: RunRecord) -> str:
    c = record.config
    levels = c.corruption.levels
    last = record.last_loss
    speeds = [m["images_per_s"] for m in record.metrics if isinstance(m.get("images_per_s"), (int, float))]
    skipped = sum(m.get("skipped", 0) for m in record.metrics if isinstance(m.get("skipped"), int))
    loss = (
        f'<span class="last-loss" data-run="{esc(record.name)}">{significant(last[1])}</span> at step {last[0]}'
        if last
        else "no loss logged yet"
    )
    rows = [
        ("checkpoint", "none yet" if record.step is None else f"step {record.step} of {c.train.steps}"),
        ("corruption", esc(c.corruption.spec) + (f", {len(levels)} selected levels" if levels else "")),
        ("objective", esc(f"{c.objective.name}, {c.objective.parameterisation}, weighting {c.objective.weighting}")),
        ("network", esc(f"{c.model.base_channels} base channels, mults {list(c.model.channel_mults)}")),
        ("batch", esc(f"{c.train.batch_size} images per step and process, seed {c.train.seed}")),
        ("last loss", loss),
        ("images/s (median of windows)", number(statistics.median(speeds), 1) if speeds else "-"),
        ("skipped steps (non-finite)", str(skipped)),
    ]  # fmt: skip
    body = "".join(f'<tr><td>{esc(k)}</td><td class="text">{v}</td></tr>' for k, v in rows)
    return f'<table class="summary"><tbody>{body}</tbody></table>'


def _strip(record: RunRecord, strip: Strip) -> str:
    png, caption = strip
    head = "<h3>The process the model undoes</h3>"
    if png is not None:
        return head + f'<div class="strips">{figure(png, "image/png", caption, "pixels")}</div>'
    if record.corruption_png is not None:
        fallback = f"{caption}; showing {record.corruption_png.name} from the run folder"
        return head + f'<div class="strips">{figure(record.corruption_png.read_bytes(), "image/png", fallback)}</div>'
    return head + f'<p class="missing">{esc(caption)}</p>'


def _curves(records: Sequence[RunRecord]) -> str:
    """Loss, learning rate and gradient norm against the step: one line per run, shared axes."""
    if not any(r.metrics for r in records):
        return ""
    charts = []
    for key, label, log in CURVES:
        series = [Series(r.name, [(m["step"], m.get(key)) for m in r.metrics]) for r in records]
        batches = sorted({r.config.train.batch_size for r in records})
        title = f"{label} by step (batch {', '.join(map(str, batches))}; mean of each logging window)"
        svg = line_chart(series, title=title, xlabel="training step", ylabel=label, logy=log)
        charts.append(figure(svg, "image/svg+xml", f"{label}{' (log axis)' if log else ''}"))
    return "<h3>Training curves</h3>" + f'<div class="charts">{"".join(charts)}</div>'


def _previews(record: RunRecord) -> str:
    if not record.previews:
        return ""
    shown = record.previews
    if len(shown) > MAX_PREVIEWS:
        picks = {round(i * (len(shown) - 1) / (MAX_PREVIEWS - 1)) for i in range(MAX_PREVIEWS)}
        shown = [p for i, p in enumerate(shown) if i in picks]
    figures = [figure(path.read_bytes(), "image/png", f"step {step}", "pixels") for step, path in shown]
    info = record.preview_log.get(shown[-1][0], {})
    how = (
        f"{info.get('n', 64)} fixed-seed samples of the EMA weights, {info['sampler']} sampler, {info['nfe']} NFE"
        if "sampler" in info and "nfe" in info
        else "fixed-seed samples of the EMA weights"
    )
    count = f" (showing {len(shown)} of {len(record.previews)})" if len(shown) < len(record.previews) else ""
    return f"<h3>Previews{esc(count)}</h3><p>{esc(how)}</p>" + f'<div class="timeline">{"".join(figures)}</div>'


def _samples(record: RunRecord) -> str:
    if not record.samples:
        return ""
    figures = []
    for found in record.samples:
        m = found.meta
        how = ", ".join(f"{k} {m[k]}" for k in ("sampler", "steps", "nfe", "seed", "checkpoint_step") if k in m)
        caption = f"{_relative(found.folder, record.path)}: {how or 'settings not recorded'}"
        figures.append(figure(found.grid.read_bytes(), "image/png", caption, "pixels"))
    return "<h3>Samples</h3>" + f'<div class="strips samples">{"".join(figures)}</div>'


def eval_rows(results: Sequence[dict[str, Any]]) -> tuple[list[str], list[list[tuple[str, str]]]]:
    """The columns and cells of an eval table; precision and recall columns only when a cell has them."""
    extra = [k for k in ("precision", "recall") if any(k in r for r in results)]
    headers = ["sampler", "grid", "steps", "NFE", "FID", "KID", *extra, "n", "step", "seconds"]
    rows = []
    for r in results:
        kid = f"{number(r.get('kid_mean'), 4)} ± {number(r.get('kid_std'), 4)}"
        row = [
            ("text", esc(r["sampler"])), ("text", esc(r.get("grid", "uniform"))), ("", str(r["steps"])),
            ("", str(r["nfe"])), ("fid", number(r["fid"])), ("", esc(kid)),
            *[("", number(r.get(k), 3)) for k in extra],
            ("", esc(r.get("n", "-"))), ("", esc(r.get("checkpoint_step", "-"))), ("", number(r.get("seconds"), 1)),
        ]  # fmt: skip
        rows.append(row)
    return headers, rows


def _fid_series(results: Sequence[dict[str, Any]], prefix: str = "") -> list[Series]:
    cells: dict[str, list[tuple[float, float | None]]] = {}
    for r in results:
        grid = r.get("grid", "uniform")
        label = f"{prefix}{r['sampler']}" + ("" if grid == "uniform" else f" ({grid})")
        cells.setdefault(label, []).append((r["nfe"], r["fid"]))
    return [Series(label, sorted(points)) for label, points in cells.items()]


def _budget(results: Sequence[dict[str, Any]], records: Sequence[RunRecord]) -> str:
    """What the chart's numbers cost: checkpoint steps, batch, images per cell, features."""
    steps = sorted({str(r.get("checkpoint_step", "?")) for r in results})
    ns = sorted({str(r.get("n", "?")) for r in results})
    batches = sorted({str(rec.config.train.batch_size) for rec in records})
    features = sorted({str(r.get("features", "?")) for r in results})
    return f"step {', '.join(steps)} x batch {', '.join(batches)}, n={', '.join(ns)}, {'; '.join(features)}"


def fid_chart(series: list[Series], results: Sequence[dict[str, Any]], records: Sequence[RunRecord]) -> bytes:
    nfes = sorted({r["nfe"] for r in results})
    title = f"FID against NFE (log axes)\n{_budget(results, records)}"
    return line_chart(series, title=title, xlabel="network evaluations (NFE)", ylabel="FID", logx=True, logy=True,
                      markers=True, ticks=nfes)  # fmt: skip


def _eval(record: RunRecord, found: EvalTable) -> str:
    where = _relative(found.path, record.path)
    if not found.results:
        return f"<h3>Evaluation {esc(where)}</h3><p>no cells yet</p>"
    headers, rows = eval_rows(found.results)
    svg = fid_chart(_fid_series(found.results), found.results, [record])
    chart = figure(svg, "image/svg+xml", f"FID against NFE, {where}")
    return f"<h3>Evaluation {esc(where)}</h3>" + table(headers, rows, "eval") + f'<div class="charts">{chart}</div>'


def _restoration(record: RunRecord, found: Restoration) -> str:
    where = _relative(found.folder, record.path)
    meta = found.meta
    keys = ("operator", "sigma_y", "method", "sampler", "steps", "nfe", "samples", "checkpoint_step")
    settings = ", ".join(f"{k} {meta[k]}" for k in keys if meta.get(k) is not None)
    parts = [f"<h3>Restoration {esc(where)}</h3><p>{esc(settings or 'settings not recorded')}</p>"]
    m = found.metrics
    if isinstance(m, dict) and isinstance(m.get("mean"), dict):
        headers = ["of", "PSNR (dB)", "SSIM", "consistency", "FID"]
        rows = [
            [("text", esc(k)), ("", number(m[k].get("psnr"))), ("", number(m[k].get("ssim"), 3)),
             ("", number(m[k].get("consistency"), 4)), ("fid", number(m[k].get("fid")))]
            for k in ("mean", "sample") if isinstance(m.get(k), dict)
        ]  # fmt: skip
        parts.append(f"<p>{esc(m.get('dataset', ''))}</p>" + table(headers, rows, "restore"))
    else:
        parts.append("<p>no metrics.json (restored files, not a data set with known clean images)</p>")
    caption = "degraded | posterior samples | their mean" + (" | clean" if m else "")
    strips = [figure(p.read_bytes(), "image/png", f"{p.name}: {caption}", "pixels") for p in found.strips]
    if strips:
        parts.append(f'<div class="strips">{"".join(strips)}</div>')
    return "\n".join(parts)


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


# --- several runs --------------------------------------------------------------------------------------------


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"train": {"steps": 5}}`` -> ``{"train.steps": 5}`` (lists stay values)."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


def config_differences(records: Sequence[RunRecord]) -> list[tuple[str, list[str]]]:
    """``(dotted key, the value in each run)`` for every config field where the runs differ."""
    flat = [flatten(r.config_data) for r in records]
    keys = sorted({k for f in flat for k in f})
    missing = "(not set)"
    rows = []
    for key in keys:
        values = [json.dumps(f[key]) if key in f else missing for f in flat]
        if len(set(values)) > 1:
            rows.append((key, values))
    return rows


def _comparison(records: Sequence[RunRecord]) -> str:
    names = [r.name for r in records]
    diffs = config_differences(records)
    parts = ['<section id="compare"><h2>Side by side</h2><h3>Config differences</h3>']
    if diffs:
        rows = [[("text", esc(k)), *[("text", esc(v)) for v in values]] for k, values in diffs]
        parts.append(table(["field", *names], rows, "differences"))
    else:
        parts.append("<p>the configs are identical</p>")
    parts.append(_curves(records))
    results = [(r, e) for r in records for e in r.evals]
    if results:
        series = [s for r, e in results for s in _fid_series(e.results, f"{r.name}: ")]
        cells = [c for _, e in results for c in e.results]
        chart = figure(fid_chart(series, cells, records), "image/svg+xml", "FID against NFE, every run")
        parts.append("<h3>FID against NFE, shared axes</h3>" + f'<div class="charts">{chart}</div>')
        parts.append(_fid_matrix(records))
    else:
        parts.append('<p class="missing">no run has an evaluation (eval.json)</p>')
    parts.append("</section>")
    return "\n".join(parts)


def _fid_matrix(records: Sequence[RunRecord]) -> str:
    """One row per (sampler, grid, NFE), one column per run: the lowest FID of that cell in the run's evals."""
    best: dict[tuple[str, str, int], dict[str, float]] = {}
    for r in records:
        for e in r.evals:
            for c in e.results:
                key = (c["sampler"], c.get("grid", "uniform"), c["nfe"])
                held = best.setdefault(key, {})
                if r.name not in held or c["fid"] < held[r.name]:
                    held[r.name] = c["fid"]
    rows = [
        [("text", esc(s)), ("text", esc(g)), ("", str(k)), *[("fid", number(best[key].get(r.name))) for r in records]]
        for key in sorted(best)
        for s, g, k in [key]
    ]  # fmt: skip
    return table(["sampler", "grid", "NFE", *[f"FID {r.name}" for r in records]], rows, "fid-matrix")
