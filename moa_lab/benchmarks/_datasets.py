"""The recorded datasets by name: where each file comes from, where it is found, and `pull`.

A dataset NAME is looked up, file by file, in this order:
1. `$MOA_LAB_DATA/NAME` (when set),
2. the user cache, `$MOA_LAB_CACHE_DIR/data/NAME` (default `~/.cache/moa-lab/data/NAME`), where
   `moa-lab data pull NAME` puts it,
3. `shared/data/NAME` beside the project (`../shared/data` from the repository root), for development.
Experiments name a dataset's files as `data:NAME/relative/path`.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from moa_lab.benchmarks._formats import TRANSFORMS, content_sha256, encode, file_sha256
from moa_lab.core import ConfigError, default_cache_dir

DEFAULT_MIRROR = "https://raw.githubusercontent.com"
"""Every public source is a file in a public GitHub repository: `<owner>/<repo>/<ref>/<path>`."""
PREFIX = "data:"


class DataMissing(ConfigError):
    """A dataset file is in none of the data folders; the message names the pull command."""


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: its path in the layout, its public source (None when the layout's
    file is not published as such: it is then only available from a shared data folder), the
    conversion from the source's format, and the sha256 of its content (`content_sha256`)."""

    path: str
    sha256: str
    source: str | None = None
    transform: str = "copy"
    note: str = ""


@dataclass(frozen=True)
class Dataset:
    """A named dataset: a description, its licence and its files."""

    name: str
    description: str
    licence: str
    files: tuple[DataFile, ...]

    @property
    def models(self) -> list[str]:
        """Recorded model names (the stems of `responses/*`), which filter a summary source."""
        return [Path(f.path).name.removesuffix(".jsonl.gz") for f in self.files if f.path.startswith("responses/")]


def datasets() -> dict[str, Dataset]:
    """Every dataset `moa-lab data pull` knows, from the shipped manifest."""
    raw = json.loads(resources.files("moa_lab.benchmarks").joinpath("datasets.json").read_text(encoding="utf-8"))
    return {
        name: Dataset(name, d["description"], d["licence"], tuple(DataFile(**f) for f in d["files"]))
        for name, d in raw.items()
    }


def pull_dir() -> Path:
    """Where `pull` writes: `$MOA_LAB_DATA`, else the user cache's `data/`."""
    return Path(os.environ["MOA_LAB_DATA"]) if os.environ.get("MOA_LAB_DATA") else default_cache_dir() / "data"


def data_roots(project: Path | None = None) -> list[Path]:
    """The folders searched for a dataset, in order (see the module docstring)."""
    roots = [Path(os.environ["MOA_LAB_DATA"])] if os.environ.get("MOA_LAB_DATA") else []
    roots.append(default_cache_dir() / "data")
    if project is not None:
        roots.append(project.resolve().parent / "shared" / "data")
    return roots


def find_data(ref: str, project: Path | None = None) -> Path:
    """The file or folder `NAME/rest` (or `data:NAME/rest`) in the first data folder holding it.

    Raises DataMissing, naming `moa-lab data pull NAME`, when no folder holds it."""
    rel = ref.removeprefix(PREFIX).strip("/")
    name = rel.split("/", 1)[0]
    if not name:
        raise ConfigError(f"{ref!r}: name a dataset, e.g. data:gsm8k")
    roots = data_roots(project)
    for root in roots:
        if (root / rel).exists():
            return root / rel
    known = datasets()
    hint = (
        f"run `moa-lab data pull {name}`" if name in known
        else f"no dataset is called {name!r} (known: {', '.join(known)})"
    )
    raise DataMissing(f"{PREFIX}{rel} not found in {', '.join(str(r) for r in roots)}: {hint}")


@dataclass(frozen=True)
class Pulled:
    """What a pull did: files fetched, files already present and correct, files only in shared data."""

    folder: Path
    fetched: tuple[str, ...]
    present: tuple[str, ...]
    unpublished: tuple[str, ...]


def _fetch(url: str, timeout: float) -> bytes:
    import urllib.request  # only when pulling: it is slow to import

    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (http(s) mirrors only)
        return response.read()


def pull(
    name: str,
    *,
    dest: Path | None = None,
    mirror: str | None = None,
    timeout: float = 120.0,
    on_file: Callable[[str], None] | None = None,
) -> Pulled:
    """Fetch dataset `name` from its public sources (or a `mirror` serving the same layout,
    default `$MOA_LAB_DATA_MIRROR` or raw.githubusercontent.com), convert each file to the layout
    the loaders read, check its checksum and write it under `dest/name` (default `pull_dir()`).

    A file already there with the right checksum is kept. Raises ConfigError on a checksum
    mismatch (nothing is written for that file) or a failed download."""
    known = datasets()
    if name not in known:
        raise ConfigError(f"no dataset is called {name!r} (known: {', '.join(known)})")
    ds = known[name]
    base = (mirror or os.environ.get("MOA_LAB_DATA_MIRROR") or DEFAULT_MIRROR).rstrip("/")
    if "://" not in base:
        base = Path(base).resolve().as_uri()
    folder = (dest or pull_dir()) / name
    fetched, present, unpublished = [], [], []
    sources: dict[str, bytes] = {}
    for f in ds.files:
        target = folder / f.path
        if f.source is None:
            unpublished.append(f.path)
            continue
        if target.is_file() and _sha_or_none(target) == f.sha256:
            present.append(f.path)
            continue
        if on_file is not None:
            on_file(f.path)
        url = f"{base}/{f.source}"
        if f.source not in sources:
            try:
                sources[f.source] = _fetch(url, timeout)
            except OSError as exc:
                raise ConfigError(f"could not fetch {url}: {exc}") from None
        content = TRANSFORMS[f.transform](sources[f.source], f.source, ds.models)
        got = content_sha256(content)
        if got != f.sha256:
            raise ConfigError(f"{url}: checksum mismatch for {name}/{f.path} (expected {f.sha256[:12]}…, got {got[:12]}…)")
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
            tmp.write(encode(content, f.path))
        os.replace(tmp.name, target)
        fetched.append(f.path)
    return Pulled(folder, tuple(fetched), tuple(present), tuple(unpublished))


def _sha_or_none(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except (OSError, ValueError):
        return None
