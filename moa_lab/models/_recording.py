"""A recording: the calls of a run kept as a replay dataset, each matched by its whole request.

`moa-lab record export` writes one (`calls.jsonl`, one `RecordedCall` per line, and a manifest,
`recording.json`); a `replay` endpoint (or `--replay DIR`) serves it. A replayed request is answered
when its model name, its messages (or its completion-style prompt), its sampling settings and its
sample index all equal a recorded call's, so every layer replays, not only plain instructions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moa_lab.core import ConfigError, Message, Request, Sampling, Usage
from moa_lab.models._cache import remembered

CALLS_FILE = "calls.jsonl"
"""The recorded calls of a recording folder, one JSON object per line."""
MANIFEST_FILE = "recording.json"
"""A recording folder's manifest: where its calls came from and what was left out."""
SCHEMA = "moa-lab/recording"
VERSION = 1


def replay_key(request: Request) -> str:
    """sha256 of what a replayed request is matched by: model name, the prompt (a completion-style
    request, whose messages no endpoint sees) or the full messages, sampling and sample index."""
    return remembered("replay", request, make=lambda: _replay_key(request))


def _replay_key(request: Request) -> str:
    payload: dict[str, Any] = {
        "model": request.model,
        "sampling": request.sampling.to_dict(),
        "sample_index": request.sample_index,
    }
    if request.prompt is not None:
        payload["prompt"] = request.prompt
    else:
        payload["messages"] = [m.to_dict() for m in request.messages]
    return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class RecordedCall:
    """One call of a recording: the request as its model received it, the answer and the usage the
    endpoint reported (so a replay costs what the run cost). `endpoint` is where it was made."""

    request: Request
    output: str
    usage: Usage
    endpoint: str = ""

    @property
    def key(self) -> str:
        return replay_key(self.request)

    def to_row(self) -> dict[str, Any]:
        """The JSON object of its `calls.jsonl` line."""
        r = self.request
        row: dict[str, Any] = {"model": r.model, "endpoint": self.endpoint, "sample_index": r.sample_index,
                               "sampling": r.sampling.to_dict()}
        if r.prompt is not None:
            row["prompt"] = r.prompt
        else:
            row["messages"] = [m.to_dict() for m in r.messages]
        row["output"] = self.output
        row["usage"] = {"input_tokens": self.usage.input_tokens, "output_tokens": self.usage.output_tokens}
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any], where: str) -> RecordedCall:
        """Read a `calls.jsonl` line; a malformed one is a ConfigError naming `where` (file:line)."""
        try:
            s = row["sampling"]
            sampling = Sampling(float(s["temperature"]), int(s["max_tokens"]), s.get("top_p"), s.get("seed"), tuple(s.get("stop") or ()))
            messages = tuple(Message(m["role"], m["content"]) for m in row.get("messages") or ())
            prompt = row.get("prompt")
            if prompt is None and not messages:
                raise KeyError("messages or prompt")
            usage = row.get("usage") or {}
            return cls(Request(str(row["model"]), messages, sampling, prompt, int(row["sample_index"])), str(row["output"]),
                       Usage(int(usage.get("input_tokens", 0)), int(usage.get("output_tokens", 0))), str(row.get("endpoint", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: not a recorded call ({type(exc).__name__}: {exc}); "
                              "write it again with `moa-lab record export`") from None


def describe_request(request: Request) -> str:
    """One line naming a request: its form, sample index, sampling and the start of what it asked."""
    if request.prompt is not None:
        form, text = "completion prompt", request.prompt
    else:
        last = request.messages[-1] if request.messages else Message("user", "")
        form, text = f"chat of {len(request.messages)} message{'s' * (len(request.messages) != 1)}", last.content
    s = request.sampling
    tail = " ".join(text.split())[-80:]
    return f"{form}, sample {request.sample_index}, temperature {s.temperature}, max_tokens {s.max_tokens}, ending {tail!r}"


def recording_file(path: Path) -> Path:
    """The calls file of a recording (`path` is its folder or the file itself); a ConfigError naming
    the path and how to make one when it is neither."""
    calls = path / CALLS_FILE if path.is_dir() else path
    if not calls.is_file():
        raise ConfigError(f"{path}: not a recording (no {CALLS_FILE} in it); make one with `moa-lab record export RUN --out {path}`")
    return calls


def write_recording(folder: Path, calls: Iterable[RecordedCall], manifest: dict[str, Any]) -> Path:
    """Write a recording folder (`calls.jsonl` and `recording.json`, each replaced whole) and return
    the calls file. A folder holding anything but a recording is refused, so nothing is overwritten
    by mistake."""
    folder.mkdir(parents=True, exist_ok=True)
    strangers = sorted(p.name for p in folder.iterdir() if p.name not in (CALLS_FILE, MANIFEST_FILE))
    if strangers:
        raise ConfigError(f"{folder}: holds {', '.join(strangers[:3])}, not a recording; give --out a new or empty folder")
    for name, lines in ((CALLS_FILE, (json.dumps(c.to_row(), ensure_ascii=False) for c in calls)),
                        (MANIFEST_FILE, iter([json.dumps({"schema": SCHEMA, "version": VERSION, **manifest}, indent=2)]))):
        tmp = folder / f".{name}.tmp"
        with tmp.open("w", encoding="utf-8") as fh:
            for line in lines:
                fh.write(line + "\n")
        tmp.replace(folder / name)
    return folder / CALLS_FILE
