"""Recorded outputs of real models, served as if they were an endpoint."""

from __future__ import annotations

import difflib
import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from moa_lab.core import Completion, ConfigError, Message, ReplayMissing, Request
from moa_lab.models._pricing import estimate_tokens, estimate_usage
from moa_lab.models._recording import CALLS_FILE, RecordedCall, describe_request, replay_key


class ReplayClient:
    """Answers requests to `request.model` from recorded outputs.

    Reads recordings (`moa-lab record export`: a folder, or its `calls.jsonl`), which answer any
    request of a recorded run, at every layer, matched by model, messages or prompt, sampling and
    sample index (`moa_lab.models.replay_key`), with the usage the endpoint reported; a request
    recorded with several answers (made again without the cache) gets them in recorded order. Also reads
    AlpacaEval `model_outputs.json` files (a list of {instruction, output, generator}) and JSONL
    files of {instruction | id, model, output}, which answer plain instructions (one user message,
    or a prompt) whatever the sampling; `id` rows need `questions`, a JSONL file of
    {id, question | instruction | input}, and their usage is the documented estimate
    (`moa_lab.models.estimate_tokens`), since nothing was metered when the text was recorded.
    Files may be gzipped. A request with no recording raises ReplayMissing naming it and the files.
    """

    def __init__(self, paths: Iterable[str | Path], *, questions: str | Path | None = None) -> None:
        self._outputs: dict[str, dict[str, str]] = {}
        self._calls: dict[str, list[RecordedCall]] = {}
        self._served: dict[str, int] = {}
        self._longest: dict[str, int] = {}
        id_to_text = {str(r["id"]): _instruction(r) for r in _rows(Path(questions))} if questions else {}
        self._paths = [_calls_file(Path(p)) for p in paths]
        for path in self._paths:
            for n, row in enumerate(_rows(path), 1):
                if "sampling" in row:
                    self._add_call(RecordedCall.from_row(row, f"{path}:{n}"))
                    continue
                model = row.get("model") or row.get("generator") or path.name.split(".")[0]
                if "instruction" in row:
                    text = row["instruction"]
                elif "id" in row and str(row["id"]) in id_to_text:
                    text = id_to_text[str(row["id"])]
                else:
                    raise ConfigError(f"{path}: row has no 'instruction', or an 'id' missing from the questions file")
                self._outputs.setdefault(str(model), {})[_key(text)] = str(row["output"])
        if not self._outputs and not self._calls:
            raise ConfigError("replay endpoint: no recordings found in its paths")

    def _add_call(self, call: RecordedCall) -> None:
        self._calls.setdefault(call.key, []).append(call)
        model = call.request.model
        self._longest[model] = max(self._longest.get(model, 0), call.usage.output_tokens, estimate_tokens(call.output))

    @property
    def models(self) -> list[str]:
        return sorted({*self._outputs, *self._longest})

    def output_bound(self, request: Request) -> int:
        """Tokens of the recorded answer (the budget reserves this instead of max_tokens); for a
        request not recorded (yet: a later layer is planned before its references exist), the
        longest answer recorded for the model, so the bound holds for whatever is replayed."""
        answers = self._calls.get(replay_key(request)) if self._calls else None
        if answers:
            return max(max(c.usage.output_tokens, estimate_tokens(c.output)) for c in answers)
        try:
            return estimate_tokens(self._lookup(request))
        except ReplayMissing:
            return self._longest.get(request.model, 0)

    async def complete(self, request: Request) -> Completion:
        key = replay_key(request) if self._calls else ""
        answers = self._calls.get(key)
        if answers:
            # a request the run made several times without the cache gets its answers in run order
            # (then again from the first)
            served = self._served.get(key, 0)
            self._served[key] = served + 1
            call = answers[served % len(answers)]
            return Completion(call.output, call.usage, "stop")
        output = self._lookup(request)
        # a completion-style prompt is what was sent, so it is what the estimate counts
        shown = (Message("user", request.prompt),) if request.prompt is not None else request.messages
        return Completion(output, estimate_usage(shown, output), "stop", usage_estimated=True)

    def _lookup(self, request: Request) -> str:
        """The recorded output of a plain instruction (the instruction-keyed files)."""
        if request.model not in self._outputs and request.model not in self._longest:
            close = difflib.get_close_matches(request.model, self.models, n=3, cutoff=0.4)
            hint = f"did you mean {', '.join(close)}?" if close else f"recorded: {', '.join(self.models)}"
            raise ReplayMissing(f"no recordings for model {request.model!r} in {self._where()}; {hint}")
        recorded = self._outputs.get(request.model, {})
        users = [m for m in request.messages if m.role == "user"]
        plain = request.prompt is not None or (len(users) == 1 and len(request.messages) == 1)
        text = request.prompt if request.prompt is not None else users[0].content if plain else None
        output = recorded.get(_key(text)) if text is not None else None
        if output is None:
            why = "" if plain or request.model in self._longest else (
                " (its files answer plain instructions only: export the run that made this call with `moa-lab record export`)")
            raise ReplayMissing(f"{request.model}: no recording in {self._where()} of this request "
                                f"({describe_request(request)}){why}")
        return output

    def _where(self) -> str:
        names = [str(p) for p in self._paths[:2]]
        return ", ".join(names) + (f" and {len(self._paths) - 2} more files" if len(self._paths) > 2 else "")

    async def aclose(self) -> None:
        return None


def _calls_file(path: Path) -> Path:
    """A recording folder's calls file; any other path as given."""
    return path / CALLS_FILE if path.is_dir() else path


def _key(text: str) -> str:
    return text.strip()


def _instruction(row: dict[str, Any]) -> str:
    for field in ("question", "instruction", "input"):
        if field in row:
            return str(row[field])
    raise ConfigError(f"questions row {row.get('id')!r} has no question/instruction/input field")


def _rows(path: Path) -> Iterator[dict[str, Any]]:
    if not path.exists():
        raise ConfigError(f"replay file not found: {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
        head = fh.read(1)
        while head.isspace():
            head = fh.read(1)
        rest = fh.read()
    text = head + rest
    if head == "[":
        yield from json.loads(text)
        return
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{n}: not valid JSON ({exc.msg})") from None
