"""A flood of made-up keys against two web processes sharing PostgreSQL and Redis: the
audit rows stay within their bound, their counts add up to the requests (increments from
both processes, none lost), and a valid key from the same address keeps working."""

from __future__ import annotations

import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from accounts.audit import DENIED_ROWS_PER_ADDRESS
from tests.conftest import require_service
from tests.e2e.stack import Stack, daphne_command, free_port

pytestmark = pytest.mark.e2e

FLOOD = 2000
FAILED_AUTH_PER_MINUTE = 60  # SCRIBE_AUTH_FAILURE_RATE_LIMIT's default


def test_made_up_keys_on_two_web_processes_add_bounded_rows_whose_counts_add_up(
    tmp_path, model_dir
):
    require_service("127.0.0.1", 5432, "PostgreSQL")
    require_service("127.0.0.1", 6379, "Redis")
    redis_url = f"redis://127.0.0.1:6379/{os.getpid() % 15 + 1}"
    with Stack(tmp_path, model_dir, batch_workers=False, REDIS_URL=redis_url) as stack:
        port = free_port()
        stack.spawn("daphne-2", *daphne_command(port))
        bases = [stack.base_url, f"http://127.0.0.1:{port}"]
        for base in reversed(bases):  # ends on the first process's address
            stack.base_url = base
            stack.wait_until_live()
        clients = [httpx.Client(base_url=base, timeout=30) for base in bases]

        def knock(i: int) -> tuple[int, int | None]:
            client = clients[i % 2]
            raw = None if i % 5 == 0 else f"e2e{i:05d}.made-up"
            headers = {"Authorization": f"Bearer {raw}"} if raw else {}
            refused = client.get("/v1/jobs", headers=headers).status_code
            if i % 10:
                return refused, None
            valid = client.get("/v1/jobs", headers={"Authorization": f"Bearer {stack.key}"})
            return refused, valid.status_code

        started = time.time()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(knock, range(FLOOD)))
        minutes = int(time.time() // 60) - int(started // 60) + 1
        for client in clients:
            client.close()
        rows, counted = stack.sql(
            "SELECT count(*), sum(count) FROM accounts_keyauditevent WHERE action = 'denied'"
        )[0]
        addresses = stack.sql(
            "SELECT DISTINCT host(remote_addr) FROM accounts_keyauditevent WHERE action = 'denied'"
        )

    refused = Counter(status for status, _ in answers)
    valid = Counter(status for _, status in answers if status is not None)
    assert valid == {200: FLOOD // 10}
    assert set(refused) <= {401, 429}
    assert refused[401] <= FAILED_AUTH_PER_MINUTE * minutes
    assert rows <= (DENIED_ROWS_PER_ADDRESS + 1) * minutes
    assert counted == FLOOD
    assert addresses == [("127.0.0.1",)]
