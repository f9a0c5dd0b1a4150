"""Command-line interface: parses options, calls the library, turns errors into one line.

One module per command group; each registers its commands on :data:`app` with the usual
``@app.command()`` decorator when imported below. Heavy modules (torch, matplotlib,
sentencepiece) are imported inside the commands so that ``attnviz --help`` stays fast.
"""

from attnviz.cli.app import app

# command modules, in the order their commands appear in --help
from attnviz.cli import translate as _translate  # noqa: F401  isort: skip
from attnviz.cli import batch as _batch  # noqa: F401  isort: skip
from attnviz.cli import merge as _merge  # noqa: F401  isort: skip
from attnviz.cli import html as _html  # noqa: F401  isort: skip
from attnviz.cli import evaluate as _evaluate  # noqa: F401  isort: skip
from attnviz.cli import train as _train  # noqa: F401  isort: skip
from attnviz.cli import info as _info  # noqa: F401  isort: skip
from attnviz.cli import convert as _convert  # noqa: F401  isort: skip

__all__ = ["app"]
