"""Where moa-lab keeps what it makes once per user: call and embedding caches, the assembled embedded
model, exported embedders, pulled datasets."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """`$MOA_LAB_CACHE_DIR`, else `$XDG_CACHE_HOME/moa-lab`, else `~/.cache/moa-lab`."""
    if os.environ.get("MOA_LAB_CACHE_DIR"):
        return Path(os.environ["MOA_LAB_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "moa-lab"
