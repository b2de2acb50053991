"""`memp --help` starts fast: importing the command line loads no heavy library.

Checked in a fresh interpreter through ``sys.modules`` (not by timing): each command
imports the database layer, numpy, the model stack or the service when it runs.
"""

import json
import subprocess
import sys

from memp_core.commands import engine, serve, transfer
from memp_core.importers import FORMATS
from memp_core.importers.export import WHATS
from memp_core.models import HNSW_EF_SEARCH, SCOPES, Status

HEAVY = ("sqlalchemy", "sqlmodel", "numpy", "torch", "pandas", "streamlit", "fastapi", "jwt",
         "yaml", "pydantic_settings", "tqdm")  # fmt: skip


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return set(json.loads(out.strip().splitlines()[-1]))


def _loaded_after(code: str) -> list[str]:
    modules = _modules_after(code)
    return [name for name in HEAVY if name in modules]


def test_importing_the_cli_loads_no_heavy_library() -> None:
    assert _loaded_after("import memp_core.cli") == []


def test_memp_help_loads_no_heavy_library() -> None:
    code = (
        "import sys\nfrom memp_core.cli import app\nsys.argv = ['memp', '--help']\n"
        "try:\n    app()\nexcept SystemExit:\n    pass"
    )
    assert _loaded_after(code) == []
    # nor the rich help renderer (markdown, tracebacks): the help is click's plain text
    loaded = _modules_after(code)
    assert "typer.rich_utils" not in loaded
    # nor rich's console and tables: the commands make them when they print
    assert not {"rich.console", "rich.table"} & set(loaded)


def test_the_help_texts_name_the_real_vocabularies() -> None:
    # The command modules write these out to stay light; they must not drift.
    assert engine.EF_SEARCH == HNSW_EF_SEARCH
    assert engine.Status is Status
    assert serve.SCOPES == SCOPES
    assert transfer.FORMATS == FORMATS
    assert transfer.WHATS == WHATS


def test_commands_do_not_import_the_cli_module() -> None:
    # memp_core.cli assembles the app from the commands; the commands share
    # memp_core.commands.options instead of importing the app's module back.
    for name in ("dashboard", "demo", "engine", "mcp", "runs", "serve", "transfer"):
        assert "import memp_core.cli" not in _source(name)
        assert "from memp_core.cli" not in _source(name)


def _source(name: str) -> str:
    import importlib
    import inspect

    return inspect.getsource(importlib.import_module(f"memp_core.commands.{name}"))
