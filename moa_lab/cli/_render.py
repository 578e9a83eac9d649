"""Rich rendering of traces and run summaries for the terminal."""

from __future__ import annotations

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table

from moa_lab.evaluation import EvalSummary
from moa_lab.tracking import QueryRecord


def _cut(text: str, width: int = 70) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def show_query(console: Console, result: QueryRecord) -> None:
    """Each layer's proposals with tokens, $ and latency, then the answer and the totals."""
    calls = {c.agent: c for c in result.calls}
    for i, layer in enumerate(result.layers, 1):
        table = Table(title=f"Layer {i}", title_justify="left", expand=False)
        for col in ("agent", "output", "in", "out", "$", "s", "cache"):
            table.add_column(col, justify="right" if col in ("in", "out", "$", "s") else "left")
        for p in layer:
            c = calls.get(p.agent)
            text = f"[red]{_cut(p.error or '')}[/]" if p.error else _cut(p.text)
            if c is None:
                table.add_row(p.agent, text, "", "", "", "", "")
                continue
            table.add_row(
                p.agent, text, str(c.usage.input_tokens), str(c.usage.output_tokens),
                f"{c.cost.paid_usd:.6f}", f"{c.latency_s:.2f}", "hit" if c.cached else "miss",
            )
        console.print(table)
        staged = [s for s in result.stages if s.layer == i]
        if staged:  # a cascaded layer: what each stage saw and whether it stopped there
            console.print("  cascade: " + " · ".join(
                f"stage {s.stage}: {s.proposals} proposals, agreement {s.agreement:.2f}"
                + (" → stopped" if s.agreed else "") + (", answered here" if s.exited else "") for s in staged))
    agg_calls = [c for c in result.calls if c.layer == len(result.layers) + 1]
    if result.answer is not None:
        lines = [result.answer.text]
        meta = f"[dim]{result.answer.agent}"
        if result.answer.note:
            meta += f" · {result.answer.note}"
        if agg_calls:
            c = agg_calls[-1]
            meta += f" · {c.usage.input_tokens}+{c.usage.output_tokens} tokens · ${c.cost.paid_usd:.6f} · {c.latency_s:.2f}s · {'cache hit' if c.cached else 'new call'}"
        console.print(Panel(Group(*lines, meta + "[/]"), title="Answer", title_align="left", border_style="green"))
    else:
        console.print(Panel(f"[red]{result.error}[/]", title="Failed", title_align="left", border_style="red"))
    new = result.new_calls
    usage = result.usage
    cached = len(result.calls) - new
    console.print(
        f"calls: {len(result.calls)} ({cached} from cache, {new} new model call{'s' if new != 1 else ''}) · "
        f"tokens: {usage.input_tokens} in + {usage.output_tokens} out · ${result.cost.paid_usd:.6f} paid (${result.cost.list_usd:.6f} at list price) · {result.latency_s:.2f} s"
    )


def show_answers(console: Console, results: list[QueryRecord], limit: int = 20) -> None:
    """The first queries of a run with their answers (and targets, when the queries have them)."""
    order = sorted(results, key=lambda r: (len(r.sample.id), r.sample.id))[:limit]
    targets = any(r.sample.target is not None for r in order)
    table = Table(title=f"Answers (first {len(order)} of {len(results)})", title_justify="left")
    table.add_column("query")
    table.add_column("answer")
    if targets:
        table.add_column("target")
    for r in order:
        answer = _cut(r.answer.text, 50) if r.answer else f"[red]{_cut(r.error or '', 50)}[/]"
        table.add_row(_cut(r.sample.input, 50), answer, *([r.sample.target or ""] if targets else []))
    console.print(table)


def show_unpriced(console: Console, unpriced: list[str]) -> None:
    if unpriced:
        console.print(f"[yellow]no list price for {', '.join(unpriced)}: counted as $0 (add them under prices:)[/]")


def show_eval(console: Console, summaries: list[EvalSummary]) -> None:
    """One row per (topology, task): quality with its 95% CI, oracle, length, model calls per query
    (cache hits included), cost, latency p50 and p95."""
    table = Table(title="Evaluation (quality: mean [95% bootstrap CI])", title_justify="left", box=None, pad_edge=False)
    table.add_column("run", no_wrap=True)
    for col in ("n", "quality", "oracle", "chars", "calls/q", "$/query", "spent $", "p50 s", "p95 s", "fail"):
        table.add_column(col, justify="right", no_wrap=True)
    for s in summaries:
        oracle = f"{s.oracle.mean:.3f}" if s.oracle is not None else "-"
        q = s.quality
        quality = "-" if q is None or q.n == 0 else f"{q.mean:.3f} [{q.low:.3f},{q.high:.3f}]"
        table.add_row(s.label, str(s.samples), quality, oracle, f"{s.answer_chars:.0f}", f"{s.calls / max(1, s.samples):.2f}",
                      f"{s.cost_per_query:.2e}", f"{s.cost_total:.4f}", f"{s.latency_p50:.2f}", f"{s.latency_p95:.2f}", str(s.failed))
    console.print(table)
    for s in summaries:
        if s.extra:  # a judge's own statistics: win rates, per-skill ratings
            console.print(f"{s.label}: " + " · ".join(f"{k} {v:.3f}" for k, v in s.extra.items()), markup=False)
        if s.resumed:
            console.print(f"{s.label}: resumed, {s.resumed} samples kept from the earlier run")

