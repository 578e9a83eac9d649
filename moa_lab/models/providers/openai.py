"""Any OpenAI-compatible endpoint (OpenAI, Together, vLLM, Ollama, llama.cpp) through `openai`."""

from __future__ import annotations

import asyncio
import email.utils
import time
from typing import Any

from moa_lab.core import Completion, EndpointError, Request, Usage, redact_uri


class OpenAIClient:
    """Translates a Request to a chat (or, with `prompt`, a completions) call and back.

    The openai package's own retries are switched off: `Model` retries, so every attempt is
    counted, honours Retry-After and shows in the trace. `timeout` bounds the whole attempt
    (connect, headers and body): httpx's timeouts bound each read only, so a server trickling a
    byte at a time would never time out.
    """

    def __init__(self, base_url: str, api_key: str, *, timeout: float = 60.0) -> None:
        import openai  # imported here: `import moa_lab` must stay fast

        self.base_url = base_url
        self.timeout = timeout
        self._shown = redact_uri(base_url)  # errors end up in RunLogs and MLflow: no password in them
        self._openai = openai
        self._client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=timeout)

    async def complete(self, request: Request) -> Completion:
        sampling = request.sampling
        kwargs: dict[str, Any] = {"model": request.model, "temperature": sampling.temperature, "max_tokens": sampling.max_tokens}
        if sampling.top_p is not None:
            kwargs["top_p"] = sampling.top_p
        if sampling.seed is not None:
            kwargs["seed"] = sampling.seed
        if sampling.stop:
            kwargs["stop"] = list(sampling.stop)
        try:
            async with asyncio.timeout(self.timeout):
                response, choice, text = await self._create(request, kwargs)
        except TimeoutError:
            raise EndpointError(f"{self._shown}: timed out after {self.timeout:g} s", retryable=True) from None
        usage = response.usage
        if usage is None:
            raise EndpointError(f"{self._shown}: response has no usage; cost cannot be accounted", retryable=False)
        return Completion(text, Usage(usage.prompt_tokens, usage.completion_tokens), choice.finish_reason or "stop")

    async def _create(self, request: Request, kwargs: dict[str, Any]) -> tuple[Any, Any, str]:
        try:
            if request.prompt is not None:
                response = await self._client.completions.create(prompt=request.prompt, **kwargs)
                choice = response.choices[0]
                text = choice.text
            else:
                messages = [m.to_dict() for m in request.messages]
                response = await self._client.chat.completions.create(messages=messages, **kwargs)
                choice = response.choices[0]
                text = choice.message.content or ""
        except self._openai.APIStatusError as exc:
            raise _status_error(exc) from None
        except self._openai.APITimeoutError:
            raise EndpointError(f"{self._shown}: timed out", retryable=True) from None
        except self._openai.APIConnectionError as exc:
            raise EndpointError(f"{self._shown}: cannot connect ({exc})", retryable=True) from None
        except (self._openai.APIError, ValueError, AttributeError, IndexError, TypeError) as exc:
            raise EndpointError(f"{self._shown}: malformed response ({type(exc).__name__})", retryable=True) from None
        return response, choice, text

    async def aclose(self) -> None:
        await self._client.close()


def _status_error(exc: Any) -> EndpointError:
    status = exc.status_code
    retry_after = _retry_after(exc.response.headers.get("retry-after"))
    retryable = status in (408, 409, 429) or status >= 500
    message = f"HTTP {status}: {_short(exc)}"
    return EndpointError(message, status=status, retryable=retryable, retry_after=retry_after)


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delay-seconds or an HTTP date (RFC 9110)."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _short(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:200]
    return str(exc)[:200]
