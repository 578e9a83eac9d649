"""`moa-lab analyze winrate`: raw and length-controlled win rates of AlpacaEval annotation files."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from moa_lab.cli._app import app

analyze_app = typer.Typer(no_args_is_help=True, help="The paper's analyses.")
app.add_typer(analyze_app, name="analyze")
console = Console()


def _fmt(value: float | None, spec: str = ".2f") -> str:
    return "" if value is None or math.isnan(value) else format(value, spec)


@analyze_app.command("winrate")
def winrate(
    files: Annotated[list[Path], typer.Argument(help="AlpacaEval annotation files (JSON list, optionally .gz).")],
    pool: Annotated[Optional[Path], typer.Option(help="Folder of annotation files to estimate instruction difficulties from (default: the first file's folder).")] = None,
    weights: Annotated[Optional[Path], typer.Option(help="The leaderboard's fitted GLM weights CSV (default: glm_weights_length_controlled_v1.csv beside the annotations folder).")] = None,
    leaderboard: Annotated[Optional[Path], typer.Option(help="Leaderboard CSV to compare with (default: leaderboard_alpaca_eval_2.csv beside the annotations folder).")] = None,
    align: Annotated[str, typer.Option(help="Difficulty lookup: position (as alpaca-eval and its leaderboard) or instruction.")] = "position",
    csv_out: Annotated[Optional[Path], typer.Option("--csv", help="Write the table as CSV.")] = None,
    markdown: Annotated[Optional[Path], typer.Option(help="Write the table as a Markdown file.")] = None,
) -> None:
    """Win rate, its standard error and the length-controlled (LC) win rate of each system.

    The LC value is an offline approximation of AlpacaEval 2.0's length_controlled_v1, labelled
    "LC≈"; each system's difficulties are estimated leaving that system out.
    """
    from moa_lab.scoring._standings import APPROXIMATE, standings, variant_base

    if align not in ("position", "instruction"):
        raise typer.BadParameter("position or instruction", param_hint="--align")
    pool_files = sorted(p for p in pool.iterdir() if p.name.endswith((".json", ".json.gz"))) if pool else None
    rows = standings(files, pool=pool_files, weights=weights, leaderboard=leaderboard, align=align)  # type: ignore[arg-type]

    header = ["system", "LC≈ (ours)", "LC leaderboard", "diff", "win rate", "SE", "n"]
    body = [
        [r.system, _fmt(r.lc_win_rate), _fmt(r.leaderboard_lc), _fmt(r.lc_diff, "+.2f"), _fmt(r.win_rate), _fmt(r.standard_error), str(r.n)]
        for r in rows
    ]
    table = Table(title=f"AlpacaEval win rates; LC≈ = {APPROXIMATE}")
    for name in header:
        table.add_column(name, justify="left" if name == "system" else "right")
    for line in body:
        table.add_row(*line)
    console.print(table)

    compared = [r for r in rows if r.lc_diff is not None]
    if compared:
        within = sum(abs(r.lc_diff) <= 0.5 for r in compared)  # type: ignore[arg-type]
        console.print(f"LC≈ within 0.5 points of the leaderboard: {within} of {len(compared)}")
    by_name = {r.system: r for r in rows}
    variants = []
    for r in rows:
        base = variant_base(r.system)
        if base is None:
            continue
        ref = by_name.get(base)
        base_lc, source = (ref.lc_win_rate, "ours") if ref else (None, "")
        if base_lc is None:
            base_lc, source = _leaderboard_lc(base, leaderboard, files)
        variants.append((r.system, r.lc_win_rate, base, base_lc, source))
    if variants:
        vt = Table(title="Length-gamed variants: LC≈ against the base system's LC")
        for name in ("variant", "LC≈", "base", "base LC", "from", "diff"):
            vt.add_column(name)
        for name, lc, base, base_lc, source in variants:
            vt.add_row(name, _fmt(lc), base, _fmt(base_lc), source, _fmt(None if base_lc is None else lc - base_lc, "+.2f"))
        console.print(vt)

    if csv_out:
        with open(csv_out, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["system", "lc_win_rate_approx", "leaderboard_lc", "diff", "win_rate", "standard_error", "n", "difficulty_from"])
            for r in rows:
                writer.writerow([r.system, r.lc_win_rate, r.leaderboard_lc, r.lc_diff, r.win_rate, r.standard_error, r.n, r.difficulty_from])
    if markdown:
        lines = [f"LC≈: {APPROXIMATE}.", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(line) + " |" for line in body]
        markdown.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _leaderboard_lc(base: str, leaderboard: Path | None, files: list[Path]) -> tuple[float | None, str]:
    from moa_lab.scoring._annotations import read_leaderboard
    from moa_lab.scoring._standings import LEADERBOARD_FILE, beside_annotations

    path = leaderboard or beside_annotations(files, LEADERBOARD_FILE)
    entry = read_leaderboard(path).get(base) if path else None
    return (entry.length_controlled_win_rate, "leaderboard") if entry else (None, "")
