"""YAML (de)serialisation of specs with errors that name the file and the path of the bad field."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from moa_lab.core import ConfigError

M = TypeVar("M", bound=BaseModel)


def field_path(loc: tuple[Any, ...]) -> str:
    """Pydantic's location tuple as a YAML path: ('layers', 0, 'proposers') -> layers[0].proposers."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def validate(model: type[M], data: Any, *, source: str = "", prefix: str = "") -> M:
    """Validate data into `model`, turning pydantic's errors into one ConfigError naming the paths."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = field_path(tuple(err["loc"]))
            path = f"{prefix}.{path}" if prefix and path != "(top level)" else (prefix or path)
            message = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{path}: {message}")
        at = f"{source}: " if source else ""
        raise ConfigError(at + "; ".join(problems)) from None


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file; syntax errors name the line and column, bytes that are not UTF-8 the line."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{where}: invalid YAML ({problem})") from None


def to_yaml(spec: BaseModel) -> str:
    """The spec as YAML; `validate(type(spec), yaml.safe_load(to_yaml(spec))) == spec`."""
    return yaml.safe_dump(spec.model_dump(mode="json", exclude_defaults=False), sort_keys=False, allow_unicode=True)
