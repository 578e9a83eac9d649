"""The RunLog: a versioned JSONL file, one header line then one line per finished query.

It is written as queries finish (a crash loses at most the line being written) and it is the data
model that evaluation, trackers, routing and analysis read. Version-1 files (written before the
records were typed) are read and, when resumed, rewritten as version 2.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from moa_lab.core import ConfigError
from moa_lab.tracking._lock import lock_runlog
from moa_lab.tracking._records import SCHEMA, VERSION, QueryRecord, RunHeader
from moa_lab.tracking._runlog_v1 import header_from_v1, record_from_v1


def _line(record: QueryRecord) -> bytes:
    """A record's RunLog line: pydantic's UTF-8 bytes as they are (a study writes hundreds of MB;
    `model_dump_json` would decode them to be encoded again)."""
    return record.__pydantic_serializer__.to_json(record) + b"\n"


@dataclass(frozen=True)
class RunLog:
    """A RunLog as read: its header and its records in file order."""

    path: Path
    header: RunHeader
    records: list[QueryRecord]


class RunLogWriter:
    """Writes a RunLog: the header and any `records` already finished (a resumed run), then each
    record appended as it comes. Starting is atomic: the file is replaced whole, so a torn last
    line or an older version never stays in front of new records.

    The writer holds a lock on the RunLog until `close`: a second writer (another `--resume` of the
    same run, say) is refused with `WriterLocked` before it writes anything."""

    def __init__(self, path: str | Path, header: RunHeader, records: Sequence[QueryRecord] = ()) -> None:
        self.path = Path(path)
        self._lock = lock_runlog(self.path)
        try:
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            with tmp.open("wb") as fh:
                fh.write(header.model_dump_json(by_alias=True).encode() + b"\n")
                for record in records:
                    fh.write(_line(record))
            tmp.replace(self.path)
            self._fh: IO[bytes] = self.path.open("ab")
        except BaseException:
            self._lock.release()
            raise

    def write(self, record: QueryRecord) -> None:
        self._fh.write(_line(record))
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
        self._lock.release()

    def __enter__(self) -> RunLogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_runlog(path: str | Path) -> RunLog:
    """The header and records of a RunLog; a torn last line (from a killed run) is ignored."""
    path = Path(path)
    lines = _lines(path)
    _, first = next(lines, (0, None))
    if first is None:
        raise ConfigError(f"{path}: empty RunLog")
    if not isinstance(first, dict) or first.get("schema") != SCHEMA:
        raise ConfigError(f"{path}: not a moa-lab RunLog (first line has no schema {SCHEMA!r})")
    version = first.get("version", 0)
    if version > VERSION:
        raise ConfigError(f"{path}: RunLog version {version} is newer than this moa-lab ({VERSION}); upgrade moa-lab")
    v1 = version < 2
    n = 1
    try:
        header = header_from_v1(first) if v1 else RunHeader.model_validate(first)
        records = []
        for n, obj in lines:
            records.append(record_from_v1(obj) if v1 else QueryRecord.model_validate(obj))
    except (ValidationError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}:{n}: not a valid version-{version} RunLog line ({_first_problem(exc)})") from None
    return RunLog(path, header, records)


def read_runlogs(paths: Iterable[str | Path]) -> list[RunLog]:
    """Every RunLog named: a `.jsonl` file, or a run folder (each RunLog in it, in name order; a
    study folder's trial RunLogs included)."""
    out: list[RunLog] = []
    for path in map(Path, paths):
        if path.is_dir():
            files = sorted(p for p in path.rglob("*.jsonl") if not p.name.startswith("."))
            if not files:
                raise ConfigError(f"{path}: no RunLog (*.jsonl) in this folder")
            out += [read_runlog(p) for p in files]
        else:
            out.append(read_runlog(path))
    if not out:
        raise ConfigError("no RunLog given")
    return out


def _first_problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        return f"{'.'.join(str(p) for p in error['loc'])}: {error['msg']}"
    return f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)


def _lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, object) per line; a torn last line (no newline) is skipped."""
    if not path.exists():
        raise ConfigError(f"{path}: RunLog not found")
    with path.open("rb") as fh:
        for n, raw in enumerate(fh, 1):
            try:
                yield n, json.loads(raw.decode("utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                if raw.endswith(b"\n"):
                    raise ConfigError(f"{path}:{n}: corrupt line in RunLog (not JSON); delete that line to resume the rest") from None
