"""Write the references generated from the code: docs/presets.md (presets, agents, extractors,
selectors with their arguments) and docs/cli.md (every command with its options).

    python scripts/make_docs.py [--check]

`--check` writes nothing and exits 1 when a file is stale (tests/test_reference.py does the same).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def documents() -> dict[Path, str]:
    """Each generated file and its current text."""
    import moa_lab.selection  # noqa: F401 - registers the built-in selectors
    from moa_lab.cli import app
    from moa_lab.cli._reference import cli_markdown, presets_markdown

    return {ROOT / "docs" / "presets.md": presets_markdown(), ROOT / "docs" / "cli.md": cli_markdown(app)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    stale = []
    for path, text in documents().items():
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(path)
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    for path in stale:
        print(f"{path.relative_to(ROOT)} is stale: run python scripts/make_docs.py")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
