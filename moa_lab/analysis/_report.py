"""A static HTML report (no server): the specs, the numbers with CIs, every figure embedded as a
PNG, cost and budget use, and for a search study its front and best configuration as YAML."""

from __future__ import annotations

import base64
import html
import io
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from moa_lab.analysis._cost import cost
from moa_lab.analysis._layers import layers, ranker
from moa_lab.analysis._length import length
from moa_lab.analysis._proposers import proposers
from moa_lab.analysis._roles import roles
from moa_lab.analysis._runs import Analysis, runlogs, write_csv
from moa_lab.core import ConfigError
from moa_lab.evaluation import summarize
from moa_lab.registry import build
from moa_lab.tracking import RunLog

STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#222}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
table{border-collapse:collapse;font-size:12px;margin:8px 0}td,th{border:1px solid #ddd;padding:3px 7px;text-align:right}
td:first-child,th:first-child{text-align:left}th{background:#f4f4f4}img{max-width:100%;border:1px solid #eee}
pre{background:#f7f7f7;padding:8px;font-size:11px;overflow-x:auto;max-height:320px}.note{color:#555;font-size:12px}
details{margin:6px 0}"""


@dataclass
class Section:
    """A titled block of the page (already HTML)."""

    title: str
    body: str


@dataclass
class Report:
    """What the page shows: the runs' summary rows, the analyses, and extra sections (a study)."""

    title: str
    rows: list[dict[str, object]]
    analyses: list[Analysis]
    specs: dict[str, dict[str, object]]
    sections: list[Section] = field(default_factory=list)


def summary_rows(runs: Sequence[RunLog]) -> list[dict[str, object]]:
    """One row per RunLog: quality with its 95% CI, oracle, cost, tokens, p50/p95 latency."""
    rows = []
    for run in runs:
        s = summarize(run.header.label, run.path, run.records, 0.0)
        q = s.quality
        rows.append({"run": run.header.label, "samples": s.samples, "failed": s.failed,
                     "quality": "" if q is None else f"{q.mean:.3f}", "ci_95": "" if q is None else f"[{q.low:.3f}, {q.high:.3f}]",
                     "oracle": "" if s.oracle is None else f"{s.oracle.mean:.3f}", "usd_per_query": f"{s.cost_per_query:.3g}",
                     "spent_usd": f"{s.cost_total:.4f}", "tokens": s.input_tokens + s.output_tokens,
                     "latency_p50_s": f"{s.latency_p50:.2f}", "latency_p95_s": f"{s.latency_p95:.2f}", "answer_chars": f"{s.answer_chars:.0f}"})
    return rows


def default_extractor(runs: Sequence[RunLog]) -> Callable[[str], str]:
    """The vote key for the proposers analysis: the answer's number for numeric scorers, else the
    normalized first line."""
    numeric = all(r.header.scorer in ("numeric",) for r in runs)
    return build("extractor", "answer" if numeric else "normalized", where="extractor")  # type: ignore[no-any-return]


def standard_analyses(runs: Sequence[RunLog]) -> list[Analysis]:
    """Every analysis the runs allow (each one that finds something to show)."""
    out = []
    makers: list[Callable[[], Analysis]] = [lambda: proposers(runs, default_extractor(runs)), lambda: layers(runs),
                                            lambda: ranker(runs), lambda: cost(runs), lambda: roles(runs), lambda: length(runs)]
    for make in makers:
        try:
            found = make()
        except ConfigError:
            continue
        if found.rows:
            out.append(found)
    return out


def runs_report(paths: Sequence[Path], title: str | None = None) -> Report:
    """The report of RunLogs or run folders."""
    runs = runlogs(paths)
    specs = {r.header.label: r.header.topology for r in runs}
    return Report(title or f"moa-lab report: {', '.join(p.name for p in paths)}", summary_rows(runs), standard_analyses(runs), specs)


def _png(analysis: Analysis) -> str:
    buf = io.BytesIO()
    analysis.figure.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def table_html(rows: Sequence[dict[str, object]], limit: int = 200) -> str:
    """An HTML table of rows (first `limit`)."""
    if not rows:
        return "<p class=note>(no rows)</p>"
    columns = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c, '')))}</td>" for c in columns) + "</tr>" for r in rows[:limit])
    more = f"<p class=note>{len(rows) - limit} more rows in the CSV</p>" if len(rows) > limit else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def _cell(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def render(report: Report) -> str:
    """The page as one HTML string (figures inline as base64 PNG)."""
    parts = [f"<!doctype html><meta charset=utf-8><title>{html.escape(report.title)}</title><style>{STYLE}</style>",
             f"<h1>{html.escape(report.title)}</h1><p class=note>generated {time.strftime('%Y-%m-%d %H:%M')}; "
             "quality: mean score with a 95% bootstrap CI; $ at list price per query; latency p50/p95 per query</p>",
             "<h2>Runs</h2>", table_html(report.rows)]
    spent = sum(float(str(r["spent_usd"])) for r in report.rows)
    parts.append(f"<p>spent by these runs: ${spent:.4f} (cache hits free)</p>")
    for section in report.sections:
        parts += [f"<h2>{html.escape(section.title)}</h2>", section.body]
    for a in report.analyses:
        notes = "".join(f"<li>{html.escape(n)}</li>" for n in a.notes[:30])
        parts += [f"<h2>{html.escape(a.title)}</h2>", f"<img alt='{a.name}' src='data:image/png;base64,{_png(a)}'>",
                  f"<ul class=note>{notes}</ul>", f"<details><summary>table ({len(a.rows)} rows)</summary>{table_html(a.rows)}</details>"]
    parts.append("<h2>Specs</h2>")
    for label, spec in report.specs.items():
        parts.append(f"<details><summary>{html.escape(label)}</summary><pre>{html.escape(yaml.safe_dump(spec, sort_keys=False))}</pre></details>")
    return "\n".join(parts)


def write_report(report: Report, folder: Path) -> list[Path]:
    """`report.html`, `summary.csv` and each analysis's PNG and CSV in `folder`; returns the files."""
    folder.mkdir(parents=True, exist_ok=True)
    page = folder / "report.html"
    page.write_text(render(report), encoding="utf-8")
    summary = folder / "summary.csv"
    write_csv(summary, report.rows)
    files = [page, summary]
    for a in report.analyses:
        files += a.write(folder)
    return files
