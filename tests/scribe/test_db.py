from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from scribe.db import postgres_connection_policy, process_role
from scribe.env import parse_database_url

URL = "postgres://scribe@db.internal:5432/scribe"


def policy(**overrides):
    options = {"pool_min": 0, "pool_max": 8, "pool_timeout_s": 5, "application_name": "scribe-web"}
    return postgres_connection_policy(parse_database_url(URL), **{**options, **overrides})


def test_postgres_gets_a_bounded_pool_and_no_persistent_connections():
    database = policy()

    assert database["CONN_MAX_AGE"] == 0
    assert database["CONN_HEALTH_CHECKS"] is True
    assert database["OPTIONS"]["pool"] == {
        "min_size": 0,
        "max_size": 8,
        "timeout": 5,
        "name": "scribe-web",
    }
    assert database["OPTIONS"]["application_name"] == "scribe-web"


def test_a_pool_of_zero_means_a_connection_per_unit_of_work():
    database = policy(pool_max=0)

    assert "pool" not in database["OPTIONS"]
    assert database["CONN_MAX_AGE"] == 0


def test_a_pool_minimum_above_its_maximum_is_refused_naming_both_variables():
    with pytest.raises(ImproperlyConfigured, match="SCRIBE_DB_POOL_MIN=9.*SCRIBE_DB_POOL_MAX=8"):
        policy(pool_min=9)


@pytest.mark.parametrize(
    ("argv", "role"),
    [
        (["/srv/.venv/bin/daphne", "scribe.asgi:application"], "web"),
        (["/srv/.venv/lib/python3.11/site-packages/daphne/__main__.py", "-p", "8000"], "web"),
        (["manage.py", "qcluster"], "qcluster"),
        (["manage.py", "runworker", "realtime"], "realtime"),
        (["manage.py", "serve"], "web"),
    ],
)
def test_each_process_names_its_role_for_pg_stat_activity(argv, role):
    assert process_role(argv) == role
