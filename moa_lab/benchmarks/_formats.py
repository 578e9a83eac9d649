"""Dataset files as the loaders read them: reading, writing, a content checksum, and the conversions
from each public source's format into that layout."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any

from moa_lab.core import ConfigError

ANNOTATION_FIELDS = ("instruction", "output_1", "generator_1", "output_2", "generator_2", "dataset", "annotator", "preference")


def _plain(name: str) -> str:
    return name[: -len(".gz")] if name.endswith(".gz") else name


def parse(data: bytes, name: str) -> Any:
    """A file's content: a JSON value (`.json`), a list of rows (`.jsonl`) or bytes (anything else);
    `.gz` files are decompressed first."""
    if name.endswith(".gz"):
        data = gzip.decompress(data)
    plain = _plain(name)
    if plain.endswith(".json"):
        return json.loads(data)
    if plain.endswith(".jsonl"):
        return [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
    return data


def encode(content: Any, name: str) -> bytes:
    """The bytes of a layout file holding `content` (see `parse`); gzip without a timestamp."""
    plain = _plain(name)
    if plain.endswith(".json"):
        data = json.dumps(content, ensure_ascii=False, indent=1).encode("utf-8")
    elif plain.endswith(".jsonl"):
        data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in content).encode("utf-8")
    else:
        data = bytes(content)
    if name.endswith(".gz"):
        buf = io.BytesIO()
        with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as fh:
            fh.write(data)
        data = buf.getvalue()
    return data


def content_sha256(content: Any) -> str:
    """The checksum of a file's content, not of its bytes: JSON is hashed in a canonical form, so
    compression and whitespace do not matter, only the records."""
    if isinstance(content, bytes):
        data = content
    else:
        data = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    """`content_sha256` of a file on disk."""
    return content_sha256(parse(path.read_bytes(), path.name))


def _rows(source: bytes, name: str) -> list[dict[str, Any]]:
    rows = parse(source, name)
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ConfigError(f"{name}: expected a JSON list of objects")
    return rows


def _zeroeval_questions(source: bytes, name: str, models: list[str]) -> Any:
    # ZeroEval writes the gold number after a "# " marker ("# 18")
    return [{"id": r["id"], "question": r["question"], "answer": str(r["answer"]).removeprefix("#").strip()} for r in _rows(source, name)]


def _zeroeval_responses(source: bytes, name: str, models: list[str]) -> Any:
    model = PurePosixPath(name).stem
    return [{"id": r["id"], "model": model, "output": r["output"][0] if r.get("output") else ""} for r in _rows(source, name)]


def _zeroeval_summary(source: bytes, name: str, models: list[str]) -> Any:
    return [r for r in _rows(source, name) if r.get("Model") in models]


def _annotations(source: bytes, name: str, models: list[str]) -> Any:
    return [{k: r[k] for k in ANNOTATION_FIELDS if k in r} for r in _rows(source, name)]


def _copy(source: bytes, name: str, models: list[str]) -> Any:
    return parse(source, name)


Transform = Callable[[bytes, str, list[str]], Any]
TRANSFORMS: dict[str, Transform] = {
    "copy": _copy,
    "zeroeval-questions": _zeroeval_questions,
    "zeroeval-responses": _zeroeval_responses,
    "zeroeval-summary": _zeroeval_summary,
    "alpaca-annotations": _annotations,
}
"""Public source bytes (and the source's file name, and the dataset's models) -> layout content."""


def published(content: Any, transform: str, *, questions: list[dict[str, Any]] | None = None) -> Any:
    """The inverse of a transform, as far as the layout keeps it: a file in its public source's
    format holding `content`. Used to serve a local mirror in the public layout (tests, demos)."""
    if transform == "zeroeval-responses":
        by_id = {q["id"]: q for q in questions or []}
        return [
            {"id": r["id"], "question": by_id.get(r["id"], {}).get("question", ""),
             "answer": "# " + str(by_id.get(r["id"], {}).get("answer", "")), "output": [r["output"]], "generator": r["model"]}
            for r in content
        ]
    if transform not in TRANSFORMS:
        raise ConfigError(f"unknown dataset transform {transform!r}")
    return content
