"""Shared fixtures: a throw-away SQLite store per test, the real packaged embedder once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from memp_core.embeddings import Embedder, get_embedder  # noqa: E402
from memp_core.store import Store  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(name="db_url")
def db_url_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite file, also exported as MEMP_DATABASE_URL for code that reads settings."""
    url = f"sqlite:///{tmp_path / 'memp.db'}"
    monkeypatch.setenv("MEMP_DATABASE_URL", url)
    return url


@pytest.fixture(name="store")
def store_fixture(db_url: str) -> Iterator[Store]:
    store = Store(db_url)
    yield store
    store.dispose()


@pytest.fixture(scope="session", name="embedder")
def embedder_fixture() -> Embedder:
    """The real all-MiniLM-L6-v2 from the PyPI package, loaded offline once per session."""
    return get_embedder()


@pytest.fixture(name="shared_data")
def shared_data_fixture() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (the shared agent data sits beside the repo)")
    return SHARED_DATA
