"""Chat messages, sampling settings and what an endpoint returns for one call."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    """One chat turn."""

    role: Role
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Sampling:
    """Sampling settings of one call; part of the cache key."""

    temperature: float = 0.7
    max_tokens: int = 512
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, object]:
        return {
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "seed": self.seed,
            "stop": list(self.stop),
        }


@dataclass(frozen=True)
class Usage:
    """Token counts of one call (or a sum of calls)."""

    input_tokens: int = 0
    output_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.input_tokens + other.input_tokens, self.output_tokens + other.output_tokens)


@dataclass(frozen=True)
class Request:
    """What a model client is asked: a model name, the conversation and sampling settings.

    `prompt`, when set, is a raw completion-style prompt (for base models such as the embedded
    one): providers send it as is to a completions endpoint and ignore `messages`. `sample_index`
    says which of several identical requests of one layer this is (Self-MoA samples one model k
    times): endpoints never see it; the cache and the replay of a recorded run key on it.
    """

    model: str
    messages: tuple[Message, ...]
    sampling: Sampling = field(default_factory=Sampling)
    prompt: str | None = None
    sample_index: int = 0


@dataclass(frozen=True)
class Completion:
    """What a model client answers: text, usage reported by the endpoint, and why it stopped."""

    text: str
    usage: Usage
    finish_reason: str = "stop"
    usage_estimated: bool = False
    latency_s: float = 0.0
    """How long the endpoint took (kept by the cache, so a hit still knows what the call costs in time)."""
