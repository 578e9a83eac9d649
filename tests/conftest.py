from __future__ import annotations

import os
from pathlib import Path

import pytest

from moa_lab.models import MemoryCache, ModelSet, PriceTable, Price
from moa_lab.testing._scripted import ScriptedClient

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", help="also run end-to-end tests marked slow (CI does)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="end-to-end test: run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def data_dir() -> Path:
    """The recorded outputs in ../shared/data (tests that need them skip when it is absent)."""
    if not DATA.is_dir():
        pytest.skip(f"recorded data not found at {DATA} (the shared data folder is not on this machine)")
    return DATA


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh moa-lab cache folder (calls, embeddings) that shares the assembled embedded model
    file when CI set MOA_LAB_CACHE_DIR, so end-to-end tests do not assemble it again."""
    shared = os.environ.get("MOA_LAB_CACHE_DIR")
    path = tmp_path_factory.mktemp("moa-cache")
    if shared and (Path(shared) / "models").is_dir():
        (path / "models").symlink_to(Path(shared) / "models")
    return path


@pytest.fixture
def fake() -> ScriptedClient:
    return ScriptedClient()


@pytest.fixture
def prices() -> PriceTable:
    return PriceTable({"a": Price(1.0, 2.0), "b": Price(1.0, 2.0), "c": Price(1.0, 2.0), "agg": Price(3.0, 4.0)})


@pytest.fixture
def models(fake: ScriptedClient, prices: PriceTable, tmp_path: Path) -> ModelSet:
    return ModelSet(clients={"fake": fake}, cache=MemoryCache(), prices=prices, cache_dir=tmp_path)
