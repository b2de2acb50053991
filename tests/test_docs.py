"""The README documents every setting and every command (datasette's test_docs idea)."""

from pathlib import Path

import pytest
from pydantic import AliasChoices

from memp_core.cli import app, bench
from memp_core.config import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")


def _env_name(field_name: str) -> str:
    alias = Settings.model_fields[field_name].validation_alias
    assert isinstance(alias, AliasChoices)
    return str(alias.choices[0])


@pytest.mark.parametrize("field_name", sorted(Settings.model_fields))
def test_every_setting_is_in_the_readme_table(field_name: str) -> None:
    assert f"`{_env_name(field_name)}`" in README


def _command_names() -> list[str]:
    names = [c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands]
    names += [f"bench {c.name}" for c in bench.registered_commands]
    return sorted(names)


@pytest.mark.parametrize("command", _command_names())
def test_every_command_appears_in_the_readme(command: str) -> None:
    assert f"memp {command}" in README


def test_every_setting_has_a_description() -> None:
    assert all(f.description for f in Settings.model_fields.values())
