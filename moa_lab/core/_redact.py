"""Credentials inside URLs, hidden before a URL is logged, printed or stored."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

REDACTED = "***"

# userinfo runs to the last "@" before the path: a password holding a (mis-encoded) "@" is hidden whole
_SECRET_KEY_ENDINGS = ("api_key", "apikey", "secret", "password")
# The lookbehind keeps words such as "task-oriented" or "risk-free" intact.
_SECRET_VALUE = re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_\-]{8,}")
_URL_PASSWORD = re.compile(r"(://[^/:@\s]*:)[^/\s]*@")


def redact_uri(text: str) -> str:
    """`text` with the password of every URL in it replaced by ***:
    `postgresql://user:pw@host/db` -> `postgresql://user:***@host/db`, `redis://:pw@host` -> `redis://:***@host`."""
    return _URL_PASSWORD.sub(rf"\1{REDACTED}@", text) if "://" in text else text


def is_secret_key(key: str) -> bool:
    """True for keys that name a credential (`api_key`, `db_password`); token counts are not."""
    return str(key).lower().replace("-", "_").endswith(_SECRET_KEY_ENDINGS)


def redact(obj: Any) -> Any:
    """A copy of `obj` with credential-named keys, URL passwords and `sk-...` looking strings replaced by ***."""
    if isinstance(obj, Mapping):
        return {k: REDACTED if is_secret_key(k) and v is not None else redact(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        obj = redact_uri(obj)
        return _SECRET_VALUE.sub(REDACTED, obj) if "sk-" in obj else obj
    return obj
