"""Chat -> completion rendering for base models, which need worked examples instead of turns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from moa_lab.core import Message

GENERIC_INSTRUCTION = "Answer each question with one word or one number."
GENERIC_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("What is the capital of Italy?", "Rome"),
    ("How many days are in a week?", "7"),
    ("What color is the sky on a clear day?", "Blue"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is the opposite of hot?", "Cold"),
)


@dataclass(frozen=True)
class CompletionTemplate:
    """Q/A few-shot rendering. A conversation without its own worked examples gets the defaults."""

    instruction: str = GENERIC_INSTRUCTION
    examples: tuple[tuple[str, str], ...] = GENERIC_EXAMPLES

    def render(self, messages: Sequence[Message]) -> str:
        system = [m.content for m in messages if m.role == "system"]
        turns = [m for m in messages if m.role != "system"]
        pairs = [(u.content, a.content) for u, a in zip(turns[:-1:2], turns[1::2]) if u.role == "user"]
        query = turns[-1].content if turns else ""
        if not pairs:
            pairs = list(self.examples)
            system = system or [self.instruction]
        blocks = [*system, *(f"Q: {q}\nA: {a}" for q, a in pairs), f"Q: {query}\nA:"]
        return "\n\n".join(blocks)
