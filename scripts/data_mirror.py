"""Build a local mirror of the datasets' public sources from a shared data folder and serve it, to
try `moa-lab data pull` without the internet:

    python scripts/data_mirror.py --data ../shared/data --out /tmp/mirror --port 8765 &
    moa-lab data pull gsm8k --mirror http://127.0.0.1:8765
"""

from __future__ import annotations

import argparse
import functools
import http.server
from pathlib import Path

from moa_lab.testing._mirror import build_mirror


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0, help="serve on this port after building (0: build only)")
    args = parser.parse_args()
    build_mirror(args.data, args.out)
    print(f"mirror built in {args.out}", flush=True)
    if args.port:
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(args.out))
        print(f"serving http://127.0.0.1:{args.port}", flush=True)
        http.server.ThreadingHTTPServer(("127.0.0.1", args.port), handler).serve_forever()


if __name__ == "__main__":
    main()
