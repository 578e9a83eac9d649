"""Endpoint configuration: where models live and how hard they may be driven."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class EndpointConfig(BaseModel):
    """One endpoint. Models are written `<endpoint>/<model>`, e.g. `together/Qwen/Qwen1.5-72B-Chat`.

    kinds: `openai` (any OpenAI-compatible base_url; the key is read from the environment variable
    named by `api_key_env`), `local` (the embedded model, started on first use), `replay` (recorded
    outputs under `paths`).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    kind: Literal["openai", "local", "replay"]
    base_url: str | None = None
    api_key_env: str | None = None
    concurrency: int = Field(8, ge=1, le=1024)
    timeout_s: float = Field(60.0, gt=0)
    retries: int = Field(4, ge=1, le=20)
    backoff_s: float = Field(0.5, ge=0)
    max_backoff_s: float = Field(30.0, ge=0)
    paths: tuple[str, ...] = ()
    questions: str | None = None
    slots: int | None = Field(None, ge=1, le=64)
    ctx_per_slot: int = Field(2048, ge=256, le=32768)
    threads: int | None = Field(None, ge=1, le=256)
    """The embedded server's compute threads (`local` only); unset, one per core idle at its start."""
    price: float | None = Field(None, ge=0)
    """$ per million tokens, in and out, for every model of this endpoint (`price: 0`: a free
    endpoint, so a budgeted run accepts its models without a `prices:` entry)."""

    @model_validator(mode="after")
    def _check_kind(self) -> EndpointConfig:
        if self.kind == "openai" and not self.base_url:
            raise ValueError("an 'openai' endpoint needs base_url")
        if self.kind == "replay" and not self.paths:
            raise ValueError("a 'replay' endpoint needs paths (model_outputs.json or JSONL files)")
        return self


def default_endpoints() -> dict[str, EndpointConfig]:
    """`local` (the embedded model) and `openai` (api.openai.com with OPENAI_API_KEY)."""
    return {
        "local": EndpointConfig(kind="local", concurrency=4),
        "openai": EndpointConfig(kind="openai", base_url="https://api.openai.com/v1", api_key_env="OPENAI_API_KEY"),
    }
