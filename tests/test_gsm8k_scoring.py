"""The numeric scorer against the publisher's GSM8K accuracies for 18 real models (recorded replies).

Needs ../shared/data/gsm8k (skips with a reason when it is absent). Prints a table of our accuracy,
the published one and the difference (run with -s to see it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from moa_lab.benchmarks._gsm8k import load_gsm8k, load_recorded_responses, recorded_models
from moa_lab.core import ConfigError
from moa_lab.registry import build

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
GSM8K = DATA / "gsm8k"
TOLERANCE = 2.0  # percentage points


@pytest.fixture(scope="module")
def gsm8k() -> Path:
    if not GSM8K.is_dir():
        pytest.skip(f"recorded GSM8K data not found at {GSM8K} (the shared data folder is not on this machine)")
    return GSM8K


def _published(folder: Path) -> dict[str, float]:
    rows = json.loads((folder / "published_accuracy.json").read_text(encoding="utf-8"))
    return {row["Model"]: float(row["Acc"]) for row in rows}


def test_loader_reads_questions_and_replies(gsm8k: Path) -> None:
    samples = load_gsm8k(gsm8k)
    assert len(samples) == 1319
    first = samples[0]
    assert first.id == "gsm8k-main-test-#0" and first.target == "18" and "Janet" in first.input
    assert [s.id for s in load_gsm8k(gsm8k, limit=3)] == [s.id for s in samples[:3]]
    models = recorded_models(gsm8k)
    assert len(models) == 18 and "gpt-4o-2024-05-13" in models
    replies = load_recorded_responses(gsm8k, ["gemma-2-2b-it"])
    assert set(replies) == {"gemma-2-2b-it"}
    assert set(replies["gemma-2-2b-it"]) == {s.id for s in samples}


def test_loader_errors_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="questions.jsonl.gz"):
        load_gsm8k(tmp_path)
    with pytest.raises(ConfigError, match="responses"):
        recorded_models(tmp_path)
    (tmp_path / "responses").mkdir()
    with pytest.raises(ConfigError, match="no-such-model"):
        load_recorded_responses(tmp_path, ["no-such-model"])


def test_accuracy_matches_published_for_every_model(gsm8k: Path) -> None:
    gold = {s.id: s.target for s in load_gsm8k(gsm8k)}
    published = _published(gsm8k)
    replies = load_recorded_responses(gsm8k)
    numeric = build("scorer", "numeric")
    assert set(replies) == set(published), "recorded models and published_accuracy.json disagree"

    lines = [f"{'model':<30} {'ours':>7} {'published':>9} {'diff':>6}"]
    off = []
    for model in sorted(replies, key=lambda m: -published[m]):
        correct = 0
        for qid, target in gold.items():
            correct += target is not None and numeric.match(replies[model][qid], target)
        ours = 100.0 * correct / len(gold)
        diff = ours - published[model]
        lines.append(f"{model:<30} {ours:7.2f} {published[model]:9.2f} {diff:+6.2f}")
        if abs(diff) > TOLERANCE:
            off.append(model)
    table = "\n".join(lines)
    print("\n" + table)
    assert not off, f"more than {TOLERANCE} points from the published accuracy: {off}\n{table}"
