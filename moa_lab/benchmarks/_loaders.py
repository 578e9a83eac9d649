"""Dataset loaders producing Samples."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

from moa_lab.core import ConfigError, Exchange, Sample


def _open_text(path: Path) -> str:
    if not path.exists():
        raise ConfigError(f"dataset file not found: {path}")
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError) as exc:
        raise ConfigError(f"{path}: cannot be read ({exc})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None


def _json(path: Path, text: str, line: int | None = None) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{line or exc.lineno}: not valid JSON ({exc.msg})") from None


def load_jsonl(path: str | Path, *, input_field: str = "input", target_field: str = "target", limit: int | None = None) -> list[Sample]:
    """Samples from JSONL rows {input, target?, id?, ...}; other fields become metadata."""
    path = Path(path)
    samples = []
    lines: dict[str, int] = {}
    for n, line in enumerate(_open_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row: dict[str, Any] = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
        if input_field not in row:
            raise ConfigError(f"{path}:{n}: row has no {input_field!r} field")
        target = row.get(target_field)
        meta = {k: v for k, v in row.items() if k not in (input_field, target_field, "id")}
        sample_id = str(row.get("id", n))
        if sample_id in lines:
            raise ConfigError(f"{path}: lines {lines[sample_id]} and {n} have the same id {sample_id!r}; give each row its own id")
        lines[sample_id] = n
        samples.append(Sample(str(row[input_field]), None if target is None else str(target), sample_id, meta))
        if limit is not None and len(samples) >= limit:
            break
    return samples


def load_alpaca_eval(path: str | Path, *, limit: int | None = None) -> list[Sample]:
    """The instructions of an AlpacaEval `model_outputs.json` file; its output is kept as the reference."""
    path = Path(path)
    rows = _json(path, _open_text(path))
    samples = [
        Sample(r["instruction"], None, str(i), {"reference": r.get("output"), "dataset": r.get("dataset")})
        for i, r in enumerate(rows)
    ]
    return samples[:limit] if limit is not None else samples


def from_queries(queries: list[Any]) -> list[Sample]:
    """Samples from an inline list of strings or {input, target?, id?} mappings."""
    samples = []
    for i, q in enumerate(queries):
        if isinstance(q, str):
            samples.append(Sample(q, None, str(i)))
        elif isinstance(q, dict) and "input" in q:
            samples.append(Sample(str(q["input"]), None if q.get("target") is None else str(q["target"]), str(q.get("id", i))))
        else:
            raise ConfigError(f"queries[{i}]: a query is a string or {{input, target}}")
    return samples


def load_mt_bench(path: str | Path, *, references: str | Path | None = None, limit: int | None = None) -> list[Sample]:
    """First-turn samples of FastChat's MT-Bench `question.jsonl` (ids `<question_id>-t1`).

    Metadata keeps both turns and the category, and, with `references` (FastChat's reference answer
    file), the reference answers the judge uses for math, reasoning and coding. The second turn is
    built from a first-turn answer by `second_turn`, so it is asked in the same conversation.
    """
    refs: dict[str, list[str]] = {}
    if references is not None:
        for n, line in enumerate(_open_text(Path(references)).splitlines(), 1):
            if line.strip():
                row = _json(Path(references), line, n)
                refs[str(row["question_id"])] = list(row["choices"][0]["turns"])
    samples = []
    for n, line in enumerate(_open_text(Path(path)).splitlines(), 1):
        if not line.strip():
            continue
        row = _json(Path(path), line, n)
        if "turns" not in row or len(row["turns"]) != 2:
            raise ConfigError(f"{path}:{n}: an MT-Bench question has two turns")
        qid = str(row["question_id"])
        meta = {"turns": list(row["turns"]), "category": row.get("category", ""), "turn": 1, "question_id": qid}
        if qid in refs:
            meta["reference"] = refs[qid]
        samples.append(Sample(str(row["turns"][0]), None, f"{qid}-t1", meta))
        if limit is not None and len(samples) >= limit:
            break
    return samples


def second_turn(first: Sample, answer: str) -> Sample:
    """The second-turn sample of an MT-Bench question, with the first exchange as its history."""
    meta = {**first.metadata, "turn": 2, "answer_1": answer}
    return Sample(str(first.metadata["turns"][1]), None, first.id.replace("-t1", "-t2"), meta, (Exchange(first.input, answer),))
