"""`ModelSet`: resolves `<endpoint>/<model>` names to `Model`s sharing one cache, budget and limits."""

from __future__ import annotations

import asyncio
import difflib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from moa_lab.core import ConfigError, default_cache_dir
from moa_lab.models._budget import Budget
from moa_lab.models._ledger import LedgerBudget
from moa_lab.models._cache import CallCache
from moa_lab.models._client import ModelClient
from moa_lab.models._endpoints import EndpointConfig, default_endpoints
from moa_lab.models._model import Model, RetryPolicy
from moa_lab.models._pricing import Price, PriceTable


def unpriced_message(refs: list[str], why: str) -> str:
    """How to price models that have no price: `prices:` entries, or `price: 0` on a free endpoint."""
    names = ", ".join(refs)
    example = refs[0].partition("/")[2] or refs[0]
    return (f"no price for {names} ({why}, so every model needs one): add them under `prices:` "
            f"(e.g. `prices: {{{example}: {{input: 0.5, output: 1.5}}}}`, $ per million tokens), "
            f"or give a free endpoint `price: 0`")


class ModelSet:
    """Every model a run may call. Clients are created on first use and closed by `aclose`.

    Args:
        endpoints: named endpoint configs, merged over the defaults (`local`, `openai`).
        prices: the price table (defaults to the shipped one).
        cache: the call cache shared by all models (None: no caching).
        budget: the hard cap shared by all models (None: no cap).
        clients: ready clients by endpoint name (tests register fakes here).
        cache_dir: where the embedded model file and server logs live.
        local_slots: concurrent sequences of the embedded server (the widest layer is a good value).
        replay: a client that answers every endpoint's calls instead of the endpoint (a recording's
            `ReplayClient`, `--replay`): prices and limits stay the endpoints', but no endpoint is
            contacted, the embedded model never starts and no API key is read.
    """

    def __init__(
        self,
        endpoints: Mapping[str, EndpointConfig] | None = None,
        *,
        prices: PriceTable | None = None,
        cache: CallCache | None = None,
        budget: Budget | LedgerBudget | None = None,
        clients: Mapping[str, ModelClient] | None = None,
        cache_dir: Path | None = None,
        local_slots: int = 4,
        replay: ModelClient | None = None,
    ) -> None:
        self.endpoints = {**default_endpoints(), **(endpoints or {})}
        self.prices = prices or PriceTable.default()
        self.cache = cache
        self._budget = budget
        self.cache_dir = cache_dir or default_cache_dir()
        self.local_slots = local_slots
        self._clients: dict[str, ModelClient] = dict(clients or {})
        self._given = set(self._clients)
        self.replay = replay
        self._limiters: dict[str, asyncio.Semaphore] = {}
        self._models: dict[str, Model] = {}

    @property
    def budget(self) -> Budget | LedgerBudget | None:
        """The hard cap every call is admitted against; fixed when the ModelSet is built."""
        return self._budget

    @budget.setter
    def budget(self, _: object) -> None:
        raise AttributeError("a ModelSet's budget is fixed at construction: pass ModelSet(budget=...) "
                             "(or Experiment.model_set(budget=...)); models already built would ignore a later one")

    def add_client(self, endpoint: str, client: ModelClient) -> None:
        """Serve `<endpoint>/<model>` from a ready client (a test fake, a custom provider)."""
        self._clients[endpoint] = client
        self._given.add(endpoint)
        self._models = {ref: m for ref, m in self._models.items() if not ref.startswith(f"{endpoint}/")}

    def get(self, ref: str) -> Model:
        """The Model for `<endpoint>/<model>` (a bare endpoint name means its default model)."""
        model = self._models.get(ref)
        if model is None:
            model = self._models[ref] = self._build(ref)
        return model

    def check(self, ref: str) -> None:
        """Raise ConfigError now if `ref` names an unknown endpoint or a missing API key."""
        endpoint, _ = self._split(ref)
        config = self.endpoints.get(endpoint)
        if config is not None and config.kind == "openai" and endpoint not in self._given and self.replay is None:
            self._api_key(endpoint, config)

    def price(self, ref: str) -> Price | None:
        """The price `ref` is charged at: its endpoint's `price`, else the price table's; None if neither."""
        endpoint, name = self._split(ref)
        config = self.endpoints.get(endpoint) if endpoint not in self._given else None
        if config is not None and config.price is not None:
            return Price(config.price, config.price, source=f"endpoint {endpoint} price")
        return self.prices.find(name)

    def check_prices(self, refs: Iterable[str]) -> None:
        """With a budget, raise ConfigError naming every model of `refs` that has no price (a
        model that is free by mistake would let the cap be spent unseen)."""
        if self._budget is None:
            return
        unpriced = sorted({ref for ref in refs if self.price(ref) is None})
        if unpriced:
            raise ConfigError(unpriced_message(unpriced, "a budget is set"))

    def _split(self, ref: str) -> tuple[str, str]:
        endpoint, _, name = ref.partition("/")
        known = sorted({*self.endpoints, *self._clients})
        if endpoint not in known:
            close = difflib.get_close_matches(endpoint, known, n=2, cutoff=0.5)
            hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else f"endpoints: {', '.join(known)}"
            raise ConfigError(f"model {ref!r}: unknown endpoint {endpoint!r}; {hint} (write models as <endpoint>/<model>)")
        if not name:
            from moa_lab.models.providers._embedded import DEFAULT_MODEL

            config = self.endpoints.get(endpoint)
            if config is None or config.kind != "local":
                raise ConfigError(f"model {ref!r}: write it as {endpoint}/<model name>")
            name = DEFAULT_MODEL
        return endpoint, name

    def _build(self, ref: str) -> Model:
        endpoint, name = self._split(ref)
        # an endpoint given only as a ready client (a test fake) gets the default limits
        config = self.endpoints.get(endpoint) if endpoint not in self._given else None
        client = self._client(endpoint, config) if config is not None else self._clients[endpoint]
        concurrency = config.concurrency if config is not None else 64
        limiter = self._limiters.setdefault(endpoint, asyncio.Semaphore(concurrency))
        retry = RetryPolicy(config.retries, config.backoff_s, config.max_backoff_s) if config else RetryPolicy()
        price = self.price(ref)
        if price is None:
            if self._budget is not None:
                raise ConfigError(unpriced_message([ref], "a budget is set"))
            price = self.prices.get(name)  # $0, listed in `prices.unpriced` for a warning
        overhead = 0
        if config is not None and config.kind == "local":
            from moa_lab.models.providers.local import PROMPT_OVERHEAD_TOKENS

            overhead = PROMPT_OVERHEAD_TOKENS
        return Model(
            f"{endpoint}/{name}",
            name,
            client,
            limiter=limiter,
            price=price,
            retry=retry,
            cache=self.cache,
            budget=self._budget,
            prompt_overhead_tokens=overhead,
        )

    def _client(self, endpoint: str, config: EndpointConfig) -> ModelClient:
        client = self._clients.get(endpoint)
        if client is not None:
            return client
        if self.replay is not None:
            client = self.replay
        elif config.kind == "openai":
            from moa_lab.models.providers.openai import OpenAIClient

            client = OpenAIClient(config.base_url or "", self._api_key(endpoint, config), timeout=config.timeout_s)
        elif config.kind == "replay":
            from moa_lab.models.providers.replay import ReplayClient

            client = ReplayClient(config.paths, questions=config.questions)
        else:
            from moa_lab.models.providers.local import LocalClient, default_config

            slots = config.slots or self.local_slots
            client = LocalClient(default_config(self.cache_dir, slots, config.ctx_per_slot, config.threads))
            self._limiters.setdefault(endpoint, asyncio.Semaphore(slots))
        self._clients[endpoint] = client
        return client

    @staticmethod
    def _api_key(endpoint: str, config: EndpointConfig) -> str:
        if not config.api_key_env:
            return "none"  # local servers (vLLM, llama.cpp) accept any key
        key = os.environ.get(config.api_key_env)
        if not key:
            raise ConfigError(
                f"endpoint {endpoint!r} reads its API key from ${config.api_key_env}, which is not set; "
                f"export {config.api_key_env}=... (the key is never logged)"
            )
        return key

    async def aclose(self) -> None:
        """Close every client (stops the embedded server if it was started)."""
        clients = [*self._clients.values(), *([self.replay] if self.replay is not None else [])]
        for client in {id(c): c for c in clients}.values():  # a replay serves several endpoints: close it once
            await client.aclose()
        if self._budget is not None:
            self._budget.close()

    async def __aenter__(self) -> ModelSet:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
