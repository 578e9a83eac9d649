"""The RunLog: a versioned JSONL file, one header line then one line per finished query.

It is written as queries finish (a crash loses at most the line being written) and it is the data
model that analysis and trackers read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from moa_lab.core import ConfigError

SCHEMA = "moa-lab/runlog"
VERSION = 1


class RunLogWriter:
    """Appends records to a RunLog; `resume=True` keeps an existing file and its records."""

    def __init__(self, path: str | Path, header: Mapping[str, Any], *, resume: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not (resume and self.path.exists())
        self._fh: IO[str] = self.path.open("w" if fresh else "a", encoding="utf-8")
        if fresh:
            self._write({"schema": SCHEMA, "version": VERSION, "created": time.time(), **header})

    def write(self, record: Mapping[str, Any]) -> None:
        self._write(record)

    def _write(self, obj: Mapping[str, Any]) -> None:
        self._fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> RunLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_runlog(path: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(header, records) of a RunLog; a torn last line (from a killed run) is ignored."""
    header, records = None, []
    for obj in _lines(Path(path)):
        if header is None:
            if obj.get("schema") != SCHEMA:
                raise ConfigError(f"{path}: not a moa-lab RunLog (first line has no schema {SCHEMA!r})")
            if obj.get("version", 0) > VERSION:
                raise ConfigError(f"{path}: RunLog version {obj['version']} is newer than this moa-lab ({VERSION})")
            header = obj
        else:
            records.append(obj)
    if header is None:
        raise ConfigError(f"{path}: empty RunLog")
    return header, records


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        raise ConfigError(f"{path}: RunLog not found")
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                if line.endswith("\n"):
                    raise ConfigError(f"{path}: corrupt line in RunLog") from None
