"""The registry of buildable things (proposers, aggregators, extractors, selectors, ...)."""

from moa_lab.registry._kinds import Kind, did_you_mean
from moa_lab.registry._registry import (
    ENTRY_POINT_GROUP,
    Registered,
    build,
    check_args,
    lookup,
    names,
    register,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Kind",
    "Registered",
    "build",
    "check_args",
    "did_you_mean",
    "lookup",
    "names",
    "register",
]
