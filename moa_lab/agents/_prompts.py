"""Pure prompt building: the paper's aggregate-and-synthesize prompt, the ranker prompt and
few-shot rendering for base models. Nothing here calls a model."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

from moa_lab.core import ConfigError, Exchange, Message

Language = Literal["en", "ja"]
Format = Literal["chat", "qa", "lines"]
"""How an agent talks to its model: `chat` messages, or a completion prompt for base models with
worked examples as `Q: ...\\nA: ...` blocks (`qa`) or `input output` lines (`lines`, for
`2 + 5 = 7` style tasks)."""


@dataclass(frozen=True)
class Example:
    """A worked example: an input, the answer, and for aggregators the proposals shown with it."""

    input: str
    output: str
    proposals: tuple[str, ...] = ()


@cache
def template(name: str) -> str:
    """A prompt template shipped in `moa_lab/agents/templates/` (read once)."""
    return resources.files("moa_lab.agents").joinpath("templates", f"{name}.txt").read_text(encoding="utf-8").rstrip("\n")


def to_examples(raw: Iterable[Any] | None, *, where: str = "examples") -> tuple[Example, ...]:
    """Examples from config: `[input, output]` pairs or `{input, output, proposals}` mappings."""
    examples = []
    for i, item in enumerate(raw or ()):
        if isinstance(item, Example):
            examples.append(item)
        elif isinstance(item, (list, tuple)) and len(item) == 2:
            examples.append(Example(str(item[0]), str(item[1])))
        elif isinstance(item, dict) and {"input", "output"} <= item.keys():
            examples.append(Example(str(item["input"]), str(item["output"]), tuple(map(str, item.get("proposals", ())))))
        else:
            raise ConfigError(f"{where}[{i}]: an example is [input, output] or {{input, output, proposals}}")
    return tuple(examples)


def references_block(references: Sequence[str], language: Language = "en", kind: str = "synthesize") -> str:
    """The system prompt with the references numbered `1. ...` as the MoA reference code does."""
    numbered = "\n".join(f"{i}. {text}" for i, text in enumerate(references, 1))
    return f"{template(f'{kind}_{language}')}\n{numbered}"


def chat_messages(
    query: str,
    *,
    system: str | None = None,
    examples: Sequence[Example] = (),
    references: Sequence[str] = (),
    language: Language = "en",
    kind: str = "synthesize",
    history: Sequence[Exchange] = (),
) -> tuple[Message, ...]:
    """Chat messages; references go into the system message after any system prompt, as in the paper.
    `history` holds the earlier exchanges of the same conversation (multi-turn tasks)."""
    parts = [p for p in (system, references_block(references, language, kind) if references else None) if p]
    messages = [Message("system", "\n\n".join(parts))] if parts else []
    for ex in examples:
        messages += [Message("user", ex.input), Message("assistant", ex.output)]
    for turn in history:
        messages += [Message("user", turn.user), Message("assistant", turn.assistant)]
    messages.append(Message("user", query))
    return tuple(messages)


def completion_prompt(
    query: str,
    *,
    format: Format,
    instruction: str | None = None,
    examples: Sequence[Example] = (),
    references: Sequence[str] = (),
) -> str:
    """A few-shot completion prompt for a base model; references become a `Proposed answers:` line."""
    if format == "lines":
        if references:
            raise ConfigError("format 'lines' cannot show previous answers; use format 'qa' for later layers")
        lines = [f"{ex.input} {ex.output}" for ex in examples] + [query]
        return "\n".join(([instruction] if instruction else []) + lines)
    blocks = [instruction] if instruction else []
    for ex in examples:
        shown = f"\nProposed answers: {', '.join(ex.proposals)}" if ex.proposals else ""
        blocks.append(f"Q: {ex.input}{shown}\nA: {ex.output}")
    shown = f"\nProposed answers: {', '.join(one_line(r) for r in references)}" if references else ""
    blocks.append(f"Q: {query}{shown}\nA:")
    return "\n\n".join(blocks)


def one_line(text: str) -> str:
    return " ".join(text.split())


def parse_choice(verdict: str, n: int) -> int | None:
    """The 1-based response number a ranker picked: the first integer in 1..n, else None."""
    for match in re.finditer(r"\d+", verdict):
        value = int(match.group())
        if 1 <= value <= n:
            return value
    return None
