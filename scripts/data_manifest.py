"""Write moa_lab/benchmarks/datasets.json, the manifest `moa-lab data pull` reads: every file of
../shared/data with its public source, its conversion and the checksum of its content.

    python scripts/data_manifest.py [--data ../shared/data] [--check]

`--check` exits 1 when the shipped manifest differs from what the data folder gives (a test runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from moa_lab.benchmarks._formats import file_sha256

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = ROOT / "moa_lab" / "benchmarks" / "datasets.json"
ZEROEVAL = "yuchenlin/ZeroEval/main/result_dirs"
ALPACA = "tatsu-lab/alpaca_eval/main"
FASTCHAT = "lm-sys/FastChat/main/fastchat/llm_judge/data"
NOT_PUBLISHED = {
    "alpaca_eval/glm_weights_length_controlled_v1.csv": "a few systems' rows removed from AlpacaEval's weights file",
    "alpaca_eval/model_outputs/Qwen1.5-72B-Chat-MoA-round-1.json.gz": "one answer edited (see NOTICE.md)",
    "alpaca_eval/model_outputs/Qwen1.5-72B-Chat-MoA-round-2.json.gz": "not in AlpacaEval's results (togethercomputer/MoA outputs/)",
    "mt_bench/gpt-4_single_judgments.jsonl": "a 320-judgment selection of FastChat's GPT-4 judgments",
}
DESCRIPTIONS = {
    "gsm8k": ("1,319 GSM8K test questions and the replies of 18 real models (ZeroEval)",
              "ZeroEval Apache-2.0; GSM8K MIT; each model's output also under its provider's terms"),
    "alpaca_eval": ("AlpacaEval 2.0: 805 instructions, outputs of the MoA paper's models, GPT-4-Turbo judge annotations, leaderboard",
                    "CC BY-NC 4.0 (non-commercial, attribution); each model's output also under its provider's terms"),
    "mt_bench": ("MT-Bench: 80 two-turn questions, GPT-4 reference answers, judge prompts (FastChat)",
                 "Apache-2.0; GPT-4 outputs under OpenAI's terms"),
}


def source(rel: str) -> tuple[str | None, str]:
    """The public source (under raw.githubusercontent.com) and conversion of a layout file."""
    name = rel.split("/")[-1]
    stem = name.split(".json")[0]
    if rel == "gsm8k/questions.jsonl.gz":
        return f"{ZEROEVAL}/gsm/gpt-4o-2024-05-13.json", "zeroeval-questions"
    if rel.startswith("gsm8k/responses/"):
        return f"{ZEROEVAL}/gsm/{stem}.json", "zeroeval-responses"
    if rel == "gsm8k/published_accuracy.json":
        return f"{ZEROEVAL}/gsm.summary.json", "zeroeval-summary"
    if rel.startswith("alpaca_eval/model_outputs/"):
        return f"{ALPACA}/results/{stem}/model_outputs.json", "copy"
    if rel.startswith("alpaca_eval/annotations/"):
        return f"{ALPACA}/results/{stem}/weighted_alpaca_eval_gpt4_turbo/annotations.json", "alpaca-annotations"
    if rel == "alpaca_eval/leaderboard_alpaca_eval_2.csv":
        return f"{ALPACA}/src/alpaca_eval/leaderboards/data_AlpacaEval_2/weighted_alpaca_eval_gpt4_turbo_leaderboard.csv", "copy"
    if rel == "mt_bench/reference_answer_gpt-4.jsonl":
        return f"{FASTCHAT}/mt_bench/reference_answer/gpt-4.jsonl", "copy"
    if rel == "mt_bench/question.jsonl":
        return f"{FASTCHAT}/mt_bench/question.jsonl", "copy"
    if rel == "mt_bench/judge_prompts.jsonl":
        return f"{FASTCHAT}/judge_prompts.jsonl", "copy"
    return None, "copy"


def manifest(data: Path) -> dict:
    out = {}
    for name, (description, licence) in DESCRIPTIONS.items():
        files = []
        for path in sorted(p for p in (data / name).rglob("*") if p.is_file()):
            rel = path.relative_to(data).as_posix()
            src, transform = source(rel)
            entry = {"path": path.relative_to(data / name).as_posix(), "sha256": file_sha256(path), "source": src, "transform": transform}
            if rel in NOT_PUBLISHED:
                entry["source"], entry["note"] = None, NOT_PUBLISHED[rel]
            files.append(entry)
        out[name] = {"description": description, "licence": licence, "files": files}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = json.dumps(manifest(args.data), indent=1) + "\n"
    if args.check:
        current = MANIFEST.read_text() if MANIFEST.exists() else ""
        print("up to date" if current == text else f"{MANIFEST} is stale: run python scripts/data_manifest.py")
        return 0 if current == text else 1
    MANIFEST.write_text(text)
    print(f"wrote {MANIFEST}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
