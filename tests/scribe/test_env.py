from __future__ import annotations

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from scribe.env import (
    env_bool,
    env_choice,
    env_device,
    env_int,
    env_list,
    env_log_level,
    env_optional_int,
    env_rate,
    env_str,
    parse_database_url,
)
from tests.conftest import REPO_ROOT, require_service


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("TRUE", True), ("on", True), ("0", False), ("no", False), ("", False)],
)
def test_booleans_accept_the_usual_spellings(raw, expected):
    assert env_bool("DEBUG", not expected, environ={"DEBUG": raw}) is expected


def test_a_misspelt_boolean_is_refused_with_the_accepted_values():
    with pytest.raises(ImproperlyConfigured, match="DEBUG='ture' is not a boolean"):
        env_bool("DEBUG", False, environ={"DEBUG": "ture"})


def test_integers_are_checked_against_their_minimum():
    assert env_int("SCRIBE_MAX_UPLOAD_MB", 2048, environ={}) == 2048
    assert env_int("SCRIBE_MAX_UPLOAD_MB", 2048, environ={"SCRIBE_MAX_UPLOAD_MB": "10"}) == 10
    with pytest.raises(ImproperlyConfigured, match="below the minimum of 1"):
        env_int("SCRIBE_MAX_UPLOAD_MB", 2048, minimum=1, environ={"SCRIBE_MAX_UPLOAD_MB": "0"})
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env_int("SCRIBE_MAX_UPLOAD_MB", 2048, environ={"SCRIBE_MAX_UPLOAD_MB": "2GB"})


def test_auto_means_no_override():
    assert env_optional_int("SCRIBE_WORKERS", environ={"SCRIBE_WORKERS": "auto"}) is None
    assert env_optional_int("SCRIBE_WORKERS", environ={"SCRIBE_WORKERS": "3"}) == 3


@pytest.mark.parametrize("value", ["auto", "cpu", "cuda", "cuda:1"])
def test_devices_are_auto_cpu_cuda_or_an_indexed_cuda(value):
    assert env_device("SCRIBE_DEVICE", "auto", environ={"SCRIBE_DEVICE": value}) == value


@pytest.mark.parametrize("value", ["gpu", "cuda:", "cuda:x", "mps"])
def test_other_devices_are_refused(value):
    with pytest.raises(ImproperlyConfigured, match="auto, cpu, cuda or cuda:N"):
        env_device("SCRIBE_DEVICE", "auto", environ={"SCRIBE_DEVICE": value})


def test_a_choice_outside_the_list_names_the_list():
    with pytest.raises(ImproperlyConfigured, match="float16, int8"):
        env_choice(
            "SCRIBE_COMPUTE_TYPE",
            "auto",
            {"int8", "float16"},
            environ={"SCRIBE_COMPUTE_TYPE": "fp8"},
        )


def test_lists_are_comma_separated():
    assert env_list("ALLOWED_HOSTS", [], environ={"ALLOWED_HOSTS": "a.example, b.example,"}) == [
        "a.example",
        "b.example",
    ]


def test_a_file_variant_reads_a_docker_secret(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")

    assert env_str("SECRET_KEY", environ={"SECRET_KEY_FILE": str(secret)}) == "s3cret"
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        env_str("SECRET_KEY", environ={"SECRET_KEY_FILE": str(tmp_path / "missing")})


def test_a_postgres_url_becomes_a_database_setting():
    config = parse_database_url("postgres://scribe:p%40ss@db.internal:6543/scribe?sslmode=require")

    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["USER"], config["PASSWORD"], config["HOST"], config["PORT"], config["NAME"]) == (
        "scribe",
        "p@ss",
        "db.internal",
        "6543",
        "scribe",
    )
    assert config["OPTIONS"] == {"sslmode": "require"}


def test_a_sqlite_url_keeps_its_path():
    assert parse_database_url("sqlite:////var/lib/scribe/db.sqlite3")["NAME"] == (
        "/var/lib/scribe/db.sqlite3"
    )


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("mysql://h/db", "not supported"),
        ("postgres://h:5432/", "needs a database name"),
        ("postgres://h:99999/db", "invalid port"),
    ],
)
def test_a_bad_database_url_says_what_is_wrong(url, reason):
    with pytest.raises(ImproperlyConfigured, match=reason):
        parse_database_url(url)


def test_the_project_migrates_on_postgresql_from_database_url():
    require_service("127.0.0.1", 5432, "PostgreSQL")
    env = {**os.environ, "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test"}

    result = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    check = subprocess.run(
        [sys.executable, "manage.py", "migrate", "--check"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_a_bad_setting_stops_manage_py_with_the_variable_named():
    env = {**os.environ, "SCRIBE_MAX_DURATION_S": "four hours"}

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert "SCRIBE_MAX_DURATION_S='four hours' is not an integer" in result.stderr


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("600/minute", "600/minute"), ("10/s", "10/second"), ("5/Day", "5/day"), ("", None)],
)
def test_rate_limits_accept_drfs_periods_and_empty_turns_them_off(raw, expected):
    assert env_rate("SCRIBE_RATE_LIMIT", "1/hour", environ={"SCRIBE_RATE_LIMIT": raw}) == expected


@pytest.mark.parametrize("raw", ["10/week", "10", "ten/minute", "0/minute", "10/"])
def test_a_rate_limit_drf_cannot_parse_is_refused_naming_the_periods(raw):
    with pytest.raises(ImproperlyConfigured) as refused:
        env_rate("SCRIBE_RATE_LIMIT", "1/hour", environ={"SCRIBE_RATE_LIMIT": raw})

    assert f"SCRIBE_RATE_LIMIT={raw!r} is not a rate" in str(refused.value)
    assert "N/second, N/minute, N/hour or N/day" in str(refused.value)


def test_log_levels_are_the_logging_names_in_any_case():
    assert env_log_level("SCRIBE_LOG_LEVEL", "WARNING", environ={}) == "WARNING"
    assert env_log_level("SCRIBE_LOG_LEVEL", "WARNING", environ={"SCRIBE_LOG_LEVEL": "info"}) == (
        "INFO"
    )
    with pytest.raises(ImproperlyConfigured, match="SCRIBE_LOG_LEVEL='LOUD' is not a log level"):
        env_log_level("SCRIBE_LOG_LEVEL", "WARNING", environ={"SCRIBE_LOG_LEVEL": "LOUD"})


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("SCRIBE_RATE_LIMIT", "10/week", "SCRIBE_RATE_LIMIT='10/week' is not a rate"),
        ("SCRIBE_LOG_LEVEL", "LOUD", "SCRIBE_LOG_LEVEL='LOUD' is not a log level"),
    ],
)
def test_a_bad_rate_or_log_level_stops_manage_py_check_naming_the_variable(name, raw, message):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO_ROOT,
        env={**os.environ, name: raw},
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode != 0
    assert message in result.stderr
