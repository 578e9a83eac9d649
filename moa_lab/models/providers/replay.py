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


class ReplayClient:
    """Answers a plain instruction (one user message) with the recorded output of `request.model`.

    Reads AlpacaEval `model_outputs.json` files (a list of {instruction, output, generator}) and
    JSONL files of {instruction | id, model, output}; `id` rows need `questions`, a JSONL file of
    {id, question | instruction | input}. Files may be gzipped. Usage is the documented estimate
    (`moa_lab.models.estimate_tokens`), since nothing was metered when the text was recorded.
    """

    def __init__(self, paths: Iterable[str | Path], *, questions: str | Path | None = None) -> None:
        self._outputs: dict[str, dict[str, str]] = {}
        id_to_text = {str(r["id"]): _instruction(r) for r in _rows(Path(questions))} if questions else {}
        for path in paths:
            for row in _rows(Path(path)):
                model = row.get("model") or row.get("generator") or Path(path).name.split(".")[0]
                if "instruction" in row:
                    text = row["instruction"]
                elif "id" in row and str(row["id"]) in id_to_text:
                    text = id_to_text[str(row["id"])]
                else:
                    raise ConfigError(f"{path}: row has no 'instruction', or an 'id' missing from the questions file")
                self._outputs.setdefault(str(model), {})[_key(text)] = str(row["output"])
        if not self._outputs:
            raise ConfigError("replay endpoint: no recordings found in its paths")

    @property
    def models(self) -> list[str]:
        return sorted(self._outputs)

    def output_bound(self, request: Request) -> int:
        """Estimated tokens of the recorded answer (the budget reserves this instead of max_tokens)."""
        try:
            return estimate_tokens(self._lookup(request))
        except ReplayMissing:
            return 0

    async def complete(self, request: Request) -> Completion:
        output = self._lookup(request)
        # a completion-style prompt is what was sent, so it is what the estimate counts
        shown = (Message("user", request.prompt),) if request.prompt is not None else request.messages
        return Completion(output, estimate_usage(shown, output), "stop", usage_estimated=True)

    def _lookup(self, request: Request) -> str:
        recorded = self._outputs.get(request.model)
        if recorded is None:
            close = difflib.get_close_matches(request.model, self.models, n=3, cutoff=0.4)
            hint = f"did you mean {', '.join(close)}?" if close else f"recorded: {', '.join(self.models)}"
            raise ReplayMissing(f"no recordings for model {request.model!r}; {hint}")
        users = [m for m in request.messages if m.role == "user"]
        if request.prompt is None and (len(users) != 1 or len(request.messages) != 1):
            raise ReplayMissing(
                f"{request.model}: replay holds answers to plain instructions only; this request has "
                f"{len(request.messages)} messages (a later-layer agent or a system prompt cannot be replayed)"
            )
        text = request.prompt if request.prompt is not None else users[0].content
        output = recorded.get(_key(text))
        if output is None:
            raise ReplayMissing(f"{request.model}: no recording for the prompt {text[:80]!r}")
        return output

    async def aclose(self) -> None:
        return None


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
