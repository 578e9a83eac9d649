"""The `moa-lab` command line."""

from moa_lab.cli import _analyze  # noqa: F401 - registers `analyze` and `report` on the app
from moa_lab.cli import _data  # noqa: F401 - registers `data list|pull` on the app
from moa_lab.cli import _diverse  # noqa: F401 - registers `router diverse` on the app
from moa_lab.cli import _pareto, _search  # noqa: F401 - register `search` and `pareto` on the app
from moa_lab.cli import _record  # noqa: F401 - registers `record export` on the app
from moa_lab.cli import _serve  # noqa: F401 - registers `serve` on the app
from moa_lab.cli import _ui  # noqa: F401 - registers `ui` on the app
from moa_lab.cli import _winrate  # noqa: F401 - registers `analyze winrate` on the app
from moa_lab.cli._app import app, main

__all__ = ["app", "main"]
