"""List prices per model and the cost of a call (US dollars, FLOPs estimate)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

from moa_lab.core import ConfigError, Cost, Message, Usage

CHARS_PER_TOKEN = 4
"""Token estimate for text with no endpoint-reported usage (replayed outputs): ceil(chars / 4),
OpenAI's published rule of thumb for English; each message adds MESSAGE_OVERHEAD_TOKENS."""
MESSAGE_OVERHEAD_TOKENS = 4


@dataclass(frozen=True)
class Price:
    """US dollars per million input and output tokens; parameter count (billions) for FLOPs."""

    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    params_b: float | None = None
    source: str = ""

    def cost(self, usage: Usage, *, paid: bool = True) -> Cost:
        """The one place a Cost is made: usage at this price, charged (`paid`) or not (a cache hit)."""
        usd = (usage.input_tokens * self.input_per_mtok + usage.output_tokens * self.output_per_mtok) / 1e6
        flops = 2 * self.params_b * 1e9 * usage.total_tokens if self.params_b else 0.0
        return Cost(usd if paid else 0.0, usd, flops)

    def worst_usd(self, input_tokens: int, output_tokens: int) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


class PriceTable:
    """Prices by model name. Without a budget unknown models cost $0 and are listed by `unpriced` so a
    run can warn; with one, `ModelSet` refuses them before the first call."""

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self._prices = dict(prices)
        self.unpriced: set[str] = set()

    @classmethod
    def default(cls) -> PriceTable:
        """The table shipped in `moa_lab/models/prices.yaml` (each entry cites its source)."""
        text = resources.files("moa_lab.models").joinpath("prices.yaml").read_text(encoding="utf-8")
        return cls.from_mapping(yaml.safe_load(text)["models"])

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str = "prices") -> PriceTable:
        prices = {}
        for name, entry in data.items():
            if isinstance(entry, (int, float)) and not isinstance(entry, bool):  # `model: 0`: one rate for both
                prices[name] = Price(float(entry), float(entry), source=f"{where}: {entry}")
                continue
            try:
                prices[name] = Price(
                    input_per_mtok=float(entry["input"]),
                    output_per_mtok=float(entry["output"]),
                    params_b=float(entry["params_b"]) if entry.get("params_b") is not None else None,
                    source=str(entry.get("source", "")),
                )
            except (KeyError, TypeError, ValueError) as exc:
                raise ConfigError(f"{where}.{name}: needs numeric 'input' and 'output' ($ per million tokens) ({exc})") from None
        return cls(prices)

    def merged(self, overrides: PriceTable) -> PriceTable:
        return PriceTable({**self._prices, **overrides._prices})

    def find(self, model: str) -> Price | None:
        """The model's price, or None when the table has none."""
        return self._prices.get(model) or self._prices.get(model.rsplit("/", 1)[-1])

    def get(self, model: str) -> Price:
        price = self.find(model)
        if price is None:
            self.unpriced.add(model)
            return Price()
        return price

    def __contains__(self, model: str) -> bool:
        return model in self._prices


def estimate_tokens(text: str) -> int:
    """The documented estimate: ceil(len(text) / CHARS_PER_TOKEN)."""
    return estimate_tokens_of_length(len(text))


def estimate_tokens_of_length(chars: int) -> int:
    """The documented estimate for a text known by its length in characters (a recorded answer)."""
    return math.ceil(chars / CHARS_PER_TOKEN)


def estimate_prompt_tokens(messages: tuple[Message, ...]) -> int:
    """The documented estimate for a prompt: each message's text plus MESSAGE_OVERHEAD_TOKENS."""
    return sum(estimate_tokens(m.content) + MESSAGE_OVERHEAD_TOKENS for m in messages)


def estimate_usage(prompt: tuple[Message, ...], output: str) -> Usage:
    """Usage of a call nothing metered (a replayed recording): the prompt and output estimates."""
    return Usage(estimate_prompt_tokens(prompt), estimate_tokens(output))


def prompt_token_bound(messages: tuple[Message, ...], extra: int = 0) -> int:
    """An upper bound on prompt tokens: byte-level BPE never emits more tokens than UTF-8 bytes."""
    return sum(len(m.content.encode()) + MESSAGE_OVERHEAD_TOKENS for m in messages) + extra
