"""A local mirror of the datasets' public sources: built from a shared data folder in the public
layout (`<owner>/<repo>/<ref>/<path>`, each file in its source's format) and served over HTTP, so
`moa-lab data pull --mirror URL` can be tested and shown without the internet."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

from moa_lab.benchmarks._datasets import datasets
from moa_lab.benchmarks._formats import parse, published


def build_mirror(data: Path, dest: Path) -> Path:
    """Write every published file of `data` (a folder like ../shared/data) under `dest` in its
    public source's layout and format; returns `dest`."""
    for ds in datasets().values():
        folder = data / ds.name
        questions = None
        if (folder / "questions.jsonl.gz").is_file():
            questions = parse((folder / "questions.jsonl.gz").read_bytes(), "questions.jsonl.gz")
        written: set[str] = set()
        # a source feeding several layout files (ZeroEval's gpt-4o file: its replies and the questions)
        # is written from the fullest of them
        for f in sorted(ds.files, key=lambda f: f.transform != "zeroeval-responses"):
            if f.source is None or f.source in written:
                continue
            content = parse((folder / f.path).read_bytes(), f.path)
            target = dest / f.source
            target.parent.mkdir(parents=True, exist_ok=True)
            public = published(content, f.transform, questions=questions)
            if f.transform == "zeroeval-questions":
                public = [{**q, "answer": "# " + q["answer"], "output": [""]} for q in content]
            target.write_bytes(public if isinstance(public, bytes) else _public_bytes(public, f.source))
            written.add(f.source)
    return dest


def _public_bytes(content: object, source: str) -> bytes:
    if source.endswith(".jsonl"):
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in content).encode()  # type: ignore[attr-defined]
    return json.dumps(content, ensure_ascii=False, indent=2).encode()


@contextlib.contextmanager
def serve_folder(folder: Path) -> Iterator[str]:
    """Serve `folder` over HTTP on 127.0.0.1 in a thread; yields the base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
