"""Credentials inside URLs, hidden before a URL is logged, printed or stored."""

from __future__ import annotations

import re

REDACTED = "***"

# userinfo runs to the last "@" before the path: a password holding a (mis-encoded) "@" is hidden whole
_URL_PASSWORD = re.compile(r"(://[^/:@\s]*:)[^/\s]*@")


def redact_uri(text: str) -> str:
    """`text` with the password of every URL in it replaced by ***:
    `postgresql://user:pw@host/db` -> `postgresql://user:***@host/db`, `redis://:pw@host` -> `redis://:***@host`."""
    return _URL_PASSWORD.sub(rf"\1{REDACTED}@", text) if "://" in text else text
