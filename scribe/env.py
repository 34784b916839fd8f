"""Strict readers for settings that come from the environment.

Every reader raises ``ImproperlyConfigured`` naming the variable and the accepted values,
so a typo in a deployment fails at start-up instead of at 3 a.m. ``NAME_FILE`` variants
read the value from a file (Docker secrets).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

# "auto" (scribe's device plan decides), "default" (the model's stored type), or a
# CTranslate2 compute type.
COMPUTE_TYPES = (
    "auto",
    "default",
    "float32",
    "float16",
    "bfloat16",
    "int8",
    "int8_float16",
    "int8_float32",
    "int8_bfloat16",
    "int16",
)

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(
    name: str, default: str | None = None, *, environ: Mapping[str, str] = os.environ
) -> str | None:
    """Return ``name`` from the environment, or from the file named by ``name_FILE``."""
    file_name = environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc}") from exc
    return environ.get(name, default)


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] = os.environ) -> bool:
    raw = env_str(name, environ=environ)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean: use one of 1/0, true/false, yes/no, on/off."
    )


def env_int(
    name: str, default: int, *, minimum: int | None = None, environ: Mapping[str, str] = os.environ
) -> int:
    raw = env_str(name, environ=environ)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={value} is below the minimum of {minimum}.")
    return value


def env_optional_int(
    name: str, *, minimum: int = 1, environ: Mapping[str, str] = os.environ
) -> int | None:
    """Return an integer, or ``None`` when unset, empty or ``auto``."""
    raw = env_str(name, environ=environ)
    if raw is None or raw.strip().lower() in {"", "auto"}:
        return None
    return env_int(name, 0, minimum=minimum, environ=environ)


def env_choice(
    name: str, default: str, choices: set[str], *, environ: Mapping[str, str] = os.environ
) -> str:
    raw = env_str(name, environ=environ)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip()
    if value not in choices:
        allowed = ", ".join(sorted(choices))
        raise ImproperlyConfigured(f"{name}={raw!r} is not one of: {allowed}.")
    return value


def env_list(
    name: str, default: list[str], *, environ: Mapping[str, str] = os.environ
) -> list[str]:
    raw = env_str(name, environ=environ)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_device(name: str, default: str, *, environ: Mapping[str, str] = os.environ) -> str:
    """Return ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    raw = env_str(name, environ=environ)
    value = default if raw is None or raw.strip() == "" else raw.strip().lower()
    if value in {"auto", "cpu", "cuda"}:
        return value
    prefix, _, index = value.partition(":")
    if prefix == "cuda" and index.isdigit():
        return value
    raise ImproperlyConfigured(f"{name}={raw!r} is not a device: use auto, cpu, cuda or cuda:N.")


# DRF reads only a period's first letter; scribe accepts the spellings that mean it.
RATE_PERIODS = {
    "s": "second",
    "sec": "second",
    "second": "second",
    "m": "minute",
    "min": "minute",
    "minute": "minute",
    "h": "hour",
    "hour": "hour",
    "d": "day",
    "day": "day",
}
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def env_rate(name: str, default: str, *, environ: Mapping[str, str] = os.environ) -> str | None:
    """Return a DRF rate ``N/second|minute|hour|day``, or ``None`` when set empty (no limit).

    DRF parses the rate on every request, so a bad one would fail each of them instead
    of start-up.
    """
    raw = env_str(name, default, environ=environ)
    if raw is None or raw.strip() == "":
        return None
    count, slash, period = raw.strip().partition("/")
    unit = RATE_PERIODS.get(period.strip().lower())
    if not slash or not count.strip().isdigit() or int(count) < 1 or unit is None:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a rate: use N/second, N/minute, N/hour or N/day "
            "(N a whole number from 1), or set it empty to turn the limit off."
        )
    return f"{int(count)}/{unit}"


def env_log_level(name: str, default: str, *, environ: Mapping[str, str] = os.environ) -> str:
    """Return a logging level name, whatever its case."""
    raw = env_str(name, environ=environ)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().upper()
    if value not in LOG_LEVELS:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a log level: use {', '.join(LOG_LEVELS)}."
        )
    return value


_DB_ENGINES = {
    "postgres": "django.db.backends.postgresql",
    "postgresql": "django.db.backends.postgresql",
    "pgsql": "django.db.backends.postgresql",
    "sqlite": "django.db.backends.sqlite3",
}


def parse_database_url(url: str) -> dict[str, Any]:
    """Turn ``postgres://user:pass@host:port/name?opt=v`` or ``sqlite:///path`` into DATABASES."""
    parts = urlsplit(url)
    engine = _DB_ENGINES.get(parts.scheme)
    if engine is None:
        raise ImproperlyConfigured(
            f"DATABASE_URL scheme {parts.scheme!r} is not supported: use postgres://… or sqlite:///…"
        )
    if engine.endswith("sqlite3"):
        # sqlite:///relative.db and sqlite:////absolute/path.db, as dj-database-url reads them.
        path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
        if not path:
            raise ImproperlyConfigured(
                "DATABASE_URL for sqlite needs a path: sqlite:///var/db.sqlite3"
            )
        return {"ENGINE": engine, "NAME": path}
    name = unquote(parts.path.lstrip("/"))
    if not name:
        raise ImproperlyConfigured(
            "DATABASE_URL needs a database name: postgres://host:5432/scribe"
        )
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured(f"DATABASE_URL has an invalid port: {url!r}") from None
    options = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    return {
        "ENGINE": engine,
        "NAME": name,
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(port or ""),
        "OPTIONS": options,
    }
