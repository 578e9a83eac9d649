"""Every built-in of every kind is registered and builds in a fresh process that only ran `import moa_lab`.

Built-ins load when their kind is first looked up, not as a side effect of whichever packages were
imported before; this runs in a subprocess because the test process has imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from moa_lab.embedding import build_embedder
from moa_lab.selection import Reference, Router

# The least each built-in with required arguments needs; every other built-in builds with no arguments.
# "<tmp>" is replaced by the test's temporary folder, where the files named here are written.
MINIMAL_ARGS: dict[str, dict[str, object]] = {
    "selector:first-k": {"k": 2},
    "selector:random-k": {"k": 2},
    "selector:learned": {"path": "<tmp>/router"},
    "selector:diverse": {"path": "<tmp>/reference", "k": 1},
    "topology:for-task": {"topology": {"layers": [{"proposers": [{"agent": "plain", "model": "local"}]}]}, "task": "opposites"},
    "scorer:judge-pairwise": {"model": "judge/model"},
    "scorer:judge-single": {"model": "judge/model", "prompts": "<tmp>/judge_prompts.jsonl"},
    "scorer:judge-rubric": {"model": "judge/model", "skills": {"correctness": "Is the answer right?"}},
}

SCRIPT = """
import json, sys
import moa_lab
from moa_lab.registry import Kind, build, names

args = json.loads(sys.argv[1])
built, failed = {}, {}
for kind in Kind:
    built[kind.value] = names(kind)
    for name in names(kind):
        try:
            build(kind, name, args.get(f"{kind.value}:{name}", {}))
        except Exception as exc:
            failed[f"{kind.value}:{name}"] = f"{type(exc).__name__}: {exc}"
for name in names("extractor"):  # a vote can name every extractor without importing scoring first
    try:
        build("aggregator", "vote", {"extractor": name})
    except Exception as exc:
        failed[f"aggregator:vote(extractor={name})"] = f"{type(exc).__name__}: {exc}"
print(json.dumps({"built": built, "failed": failed}))
"""


def _artifacts(tmp: Path) -> None:
    """A router artifact and a diverse reference with no proposers (enough to load) and a one-prompt judge prompts file."""
    embedder = build_embedder({"kind": "hash", "dim": 16})
    meta = {"aggregator": "vote", "proposers": [], "predictors": [],
            "embedder": {"id": embedder.id, "dim": embedder.dim, "spec": {"kind": "hash", "dim": 16}}}
    Router(meta, {"platt": np.zeros((0, 2)), "cost": np.zeros((0, 2))}).save(tmp / "router")
    reference = {"proposers": [], "embedder": meta["embedder"], "neighbours": 1, "shrink": 1.0}
    empty = {"memory": np.zeros((0, 16)), "agree": np.zeros((0, 0)), "deviation": np.zeros((0, 0)),
             "pool_agree": np.zeros(0), "pool_gram": np.zeros((0, 0))}
    Reference(reference, empty).save(tmp / "reference")
    prompt = {"name": "single-v1", "type": "single", "system_prompt": "You are a judge.",
              "prompt_template": "[Question]\\n{question}\\n[Answer]\\n{answer}", "output_format": "[[rating]]"}
    (tmp / "judge_prompts.jsonl").write_text(json.dumps(prompt) + "\n", encoding="utf-8")


def test_every_builtin_builds_after_only_import_moa_lab(tmp_path: Path) -> None:
    _artifacts(tmp_path)
    args = json.loads(json.dumps(MINIMAL_ARGS).replace("<tmp>", tmp_path.as_posix()))
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(args)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout)
    built, failed = out["built"], out["failed"]
    print("\n" + "\n".join(f"{kind:<11} {len(n):>2}: {', '.join(n)}" for kind, n in built.items()))
    assert not failed, "\n".join(f"{k}: {v}" for k, v in failed.items())
    assert all(built.values()), f"kinds with no built-ins: {[k for k, n in built.items() if not n]}"
    registered = {f"{kind}:{name}" for kind, n in built.items() for name in n}
    assert set(MINIMAL_ARGS) <= registered, f"MINIMAL_ARGS names what is not registered: {set(MINIMAL_ARGS) - registered}"
