"""A graded pool from AlpacaEval judge verdicts: one row per instruction, one column per system,
quality = the judge's preference for the system's answer over the reference's, $ = what that answer
cost at list price.

    moa-lab router train data:alpaca_eval/annotations --aggregator single \\
        --prices experiments/prices/alpaca_eval.yaml --out runs/router-alpaca

The folder holds AlpacaEval annotation files (`<system>.json[.gz]`, read by
`moa_lab.scoring`'s loader), every one against the same reference. A system's quality on an
instruction is `preference - 1`, in [0, 1] (1: the judge prefers it to the reference, 0.5: a tie),
so the mean of a column is the system's AlpacaEval win rate. Left out, and listed in
`RoutingData.left_out`: length-gamed variants (`*_concise`, `*_verbose`: the same model told to
write shorter or longer), adversarial entries built to fool the judge (`NullModel`, `gpt4_gamed`, and
any system the leaderboard beside the folder labels "adversarial"), and systems the price table
does not price. Instructions lacking a verdict from any kept system are dropped (a few of 805).

Tokens are the repository's documented estimate (`moa_lab.models.estimate_tokens`, ceil(chars / 4)):
prompt tokens from the instruction sent as one user message, output tokens from the system's answer
as the annotation records it; $ is both at the system's list price.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from moa_lab.core import ConfigError, Message, Usage
from moa_lab.models import PriceTable, estimate_prompt_tokens, estimate_tokens_of_length
from moa_lab.routing._data import RoutingData
from moa_lab.scoring._annotations import Verdicts, read_leaderboard, read_verdicts, system_name
from moa_lab.scoring._standings import LEADERBOARD_FILE, variant_base

ADVERSARIAL = {
    "NullModel": "adversarial: a constant answer built to fool the judge (leaderboard: 'NullModel (adversarial)')",
    "gpt4_gamed": "adversarial: GPT-4 prompted to game the judge (leaderboard: 'GPT-4 (Adversarial)')",
}
"""Entries of AlpacaEval built to fool the judge, not to answer: never routed to."""


def verdict_files(folder: str | Path) -> list[Path]:
    """The annotation files of `folder` (or of its `annotations/` subfolder), sorted by name."""
    folder = Path(folder)
    if (folder / "annotations").is_dir():
        folder = folder / "annotations"
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name.endswith((".json", ".json.gz")))


def is_verdict_folder(folder: str | Path) -> bool:
    """Whether `folder` holds AlpacaEval annotations (and is not a recorded dataset in the GSM8K layout)."""
    folder = Path(folder)
    return (folder.is_dir() and not any((folder / n).exists() for n in ("questions.jsonl", "questions.jsonl.gz"))
            and bool(verdict_files(folder)))


def exclusion(system: str, adversarial: set[str]) -> str | None:
    """Why `system` is never routed to, or None when it may be."""
    base = variant_base(system)
    if base is not None:
        return f"length-gamed variant of {base}"
    if system in ADVERSARIAL:
        return ADVERSARIAL[system]
    if system in adversarial:
        return "adversarial (so labelled on the leaderboard)"
    return None


def from_verdicts(folder: str | Path, *, prices: PriceTable | None = None, endpoint: str = "replay") -> RoutingData:
    """A graded routing table from the AlpacaEval annotation files in `folder` (see the module
    docstring). Proposer j is `{agent: plain, model: <endpoint>/<system>}`; `prices` defaults to the
    shipped table, which prices few of AlpacaEval's systems (give `--prices`)."""
    files = verdict_files(folder)
    if not files:
        raise ConfigError(f"{folder}: no AlpacaEval annotation files (<system>.json or .json.gz)")
    prices = prices or PriceTable.default()
    adversarial = _labelled_adversarial(files[0].parent.parent / LEADERBOARD_FILE)
    left_out: dict[str, str] = {}
    kept: list[Verdicts] = []
    for path in files:
        system = system_name(path)
        why = exclusion(system, adversarial)
        if why is None and prices.find(f"{endpoint}/{system}") is None:
            why = "no list price in the price table"
        if why is not None:
            left_out[system] = why
            continue
        try:
            kept.append(read_verdicts(path))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f"{path}: not an AlpacaEval annotation file ({type(exc).__name__}: {exc}); each row needs "
                              "`instruction`, `output_2` and `preference` (move other files out of the folder)") from None
    if len(kept) < 2:
        raise ConfigError(f"{folder}: {len(kept)} priced system(s) to route between; give a price file with --prices "
                          f"(e.g. experiments/prices/alpaca_eval.yaml: `models: {{<system>: {{input: 0.5, output: 1.5, "
                          f"source: ...}}}}`, $ per million tokens); left out: {', '.join(sorted(left_out))}")
    references = {v.reference for v in kept}
    if len(references) > 1:
        raise ConfigError(f"{folder}: verdicts against different references ({', '.join(sorted(references))}); "
                          "a quality is only comparable against one reference")
    return _table(kept, prices, endpoint, left_out, f"verdicts:{Path(folder)}")


def _table(kept: list[Verdicts], prices: PriceTable, endpoint: str, left_out: dict[str, str], source: str) -> RoutingData:
    """Align every system's verdicts by instruction text, keeping the instructions all of them judged."""
    cells = [{text: (pref, length) for text, pref, length in zip(v.instructions, v.preferences, v.model_lengths)
              if pref is not None} for v in kept]
    longest = max(kept, key=lambda v: len(v.instructions))
    instructions = [text for text in longest.instructions if all(text in c for c in cells)]
    if not instructions:
        raise ConfigError(f"{source}: no instruction has a verdict from every system")
    q, m = len(instructions), len(kept)
    scores, cost, tokens = np.zeros((q, m)), np.zeros((q, m)), np.zeros((q, m))
    prompts = [estimate_prompt_tokens((Message("user", text),)) for text in instructions]
    for j, (v, c) in enumerate(zip(kept, cells)):
        price = prices.get(f"{endpoint}/{v.system}")
        for i, text in enumerate(instructions):
            pref, length = c[text]
            usage = Usage(prompts[i], estimate_tokens_of_length(length))
            scores[i, j] = min(max(pref - 1.0, 0.0), 1.0)
            cost[i, j], tokens[i, j] = price.cost(usage).list_usd, usage.total_tokens
    names = [v.system for v in kept]
    ids = [hashlib.sha256(text.encode()).hexdigest()[:12] for text in instructions]
    return RoutingData(
        ids, instructions, [{"agent": "plain", "model": f"{endpoint}/{n}"} for n in names], names, scores,
        np.full((q, m), -1, dtype=np.int32), cost, tokens, source, graded=True, left_out=left_out,
    )


def _labelled_adversarial(leaderboard: Path) -> set[str]:
    """Systems the leaderboard file (when present) names "(adversarial)"."""
    if not leaderboard.is_file():
        return set()
    return {system for system, entry in read_leaderboard(leaderboard).items() if "adversarial" in entry.name.lower()}

