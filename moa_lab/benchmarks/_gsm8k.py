"""GSM8K: the test questions with gold numbers, and recorded replies of real models to them.

Folder layout (see the shared data README): `questions.jsonl.gz` with rows {"id", "question", "answer"}
(the gold number as a string) and `responses/<model>.jsonl.gz` with rows {"id", "model", "output"}.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from moa_lab.core import ConfigError, Sample

_QUESTIONS = "questions.jsonl.gz"
_RESPONSES = "responses"
_SUFFIX = ".jsonl.gz"


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-empty line of a gzipped JSONL file."""
    if not path.is_file():
        raise ConfigError(f"GSM8K file not found: {path}")
    n = 0
    try:
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise ConfigError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise ConfigError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
                yield n, row
    except UnicodeDecodeError:
        raise ConfigError(f"{path}:{n + 1}: not UTF-8 text") from None
    except (OSError, EOFError) as exc:
        raise ConfigError(f"{path}: not a readable gzip file ({exc})") from None


def _require(path: Path, n: int, row: dict[str, Any], *fields: str) -> None:
    missing = [f for f in fields if f not in row]
    if missing:
        raise ConfigError(f"{path}:{n}: row has no {', '.join(repr(f) for f in missing)} field")


def load_gsm8k(folder: str | Path, *, limit: int | None = None) -> list[Sample]:
    """The GSM8K questions in `folder` as Samples: input = question, target = gold number, id = row id.

    Raises ConfigError when `folder/questions.jsonl.gz` is missing or malformed.
    """
    path = Path(folder) / _QUESTIONS
    samples: list[Sample] = []
    for n, row in _rows(path):
        _require(path, n, row, "id", "question", "answer")
        samples.append(Sample(str(row["question"]), str(row["answer"]), str(row["id"]), {"dataset": "gsm8k"}))
        if limit is not None and len(samples) >= limit:
            break
    return samples


def recorded_models(folder: str | Path) -> list[str]:
    """Names of the models with recorded replies in `folder/responses/`, sorted.

    Raises ConfigError when the folder has no `responses/` directory.
    """
    responses = Path(folder) / _RESPONSES
    if not responses.is_dir():
        raise ConfigError(f"GSM8K responses folder not found: {responses}")
    return sorted(p.name[: -len(_SUFFIX)] for p in responses.glob(f"*{_SUFFIX}"))


def load_recorded_responses(folder: str | Path, models: list[str] | None = None) -> dict[str, dict[str, str]]:
    """Recorded replies: model -> question id -> full output text (all recorded models when `models` is None).

    Raises ConfigError for a missing folder, an unknown model (the message lists the recorded ones)
    or a malformed file.
    """
    available = recorded_models(folder)
    wanted = available if models is None else list(models)
    unknown = [m for m in wanted if m not in available]
    if unknown:
        raise ConfigError(
            f"no recorded GSM8K responses for {', '.join(map(repr, unknown))} in {Path(folder) / _RESPONSES}; "
            f"recorded: {', '.join(available) or '(none)'}"
        )
    out: dict[str, dict[str, str]] = {}
    for model in wanted:
        path = Path(folder) / _RESPONSES / f"{model}{_SUFFIX}"
        replies: dict[str, str] = {}
        for n, row in _rows(path):
            _require(path, n, row, "id", "output")
            replies[str(row["id"])] = str(row["output"])
        out[model] = replies
    return out
