"""scripts/readme_commands.py reads every documented command as a shell would, and the docs' command
blocks hold commands, not synopses (those go in untagged or `text` blocks)."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("readme_commands", ROOT / "scripts" / "readme_commands.py")
assert spec is not None and spec.loader is not None
readme_commands = importlib.util.module_from_spec(spec)
sys.modules["readme_commands"] = readme_commands
spec.loader.exec_module(readme_commands)


def test_continuations_are_joined_and_comments_dropped_outside_quotes(tmp_path: Path) -> None:
    (tmp_path / "doc.md").write_text(
        "text\n```bash\nmoa-lab eval a.yaml   # a comment\n# a whole-line comment\n\nmoa-lab pareto a.yaml \\\n"
        "  --max-cost 1   # after a continuation\ncurl -d '{\"a\": \"#not\"}' x#y\n```\n```python\nprint(1)\n\nprint(2)\n```\n"
        "```yaml\nkey: value\n```\n")
    got = readme_commands.extract("doc.md", tmp_path)
    assert [(c.line, c.lang, c.text) for c in got] == [
        (3, "bash", "moa-lab eval a.yaml"),
        (6, "bash", "moa-lab pareto a.yaml --max-cost 1"),
        (8, "bash", "curl -d '{\"a\": \"#not\"}' x#y"),
        (11, "python", "print(1)\n\nprint(2)"),
    ]


def test_every_documented_command_is_runnable_or_skipped_for_a_reason() -> None:
    commands = [c for doc in readme_commands.DOCS for c in readme_commands.extract(doc)]
    assert len(commands) >= 25 and {c.doc for c in commands} == set(readme_commands.DOCS)
    for cmd in commands:
        if cmd.lang != "bash":
            continue
        skipped = any(p.search(cmd.text) for p, _ in readme_commands.SKIP)
        # a synopsis (placeholders, [optional] parts) would fail when run: it belongs in a text block
        assert skipped or not re.search(r"\[--|\b[A-Z]{3,}\b", cmd.text), f"{cmd.doc}:{cmd.line}: {cmd.text}"
