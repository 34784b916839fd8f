"""The job list's cost does not grow with the page: queue positions come in the same query."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.services import api_key_create
from transcription.models import Job

START = timezone.now() - timedelta(hours=1)


def make_jobs(owner, statuses: list[str], *, offset_s: int = 0) -> list[Job]:
    return [
        Job.objects.create(
            owner=owner, status=status, created_at=START + timedelta(seconds=offset_s + i)
        )
        for i, status in enumerate(statuses)
    ]


def list_queries(api) -> tuple[int, dict]:
    with CaptureQueriesContext(connection) as captured:
        response = api.get("/v1/jobs")
    assert response.status_code == 200
    return len(captured), response.json()


def test_the_job_list_costs_the_same_queries_for_one_job_and_for_forty(api, owner_key):
    owner = owner_key[0].owner
    api.get("/v1/jobs")  # the key's first use records last_used_at: keep it out of the counts
    make_jobs(owner, ["queued"])
    one, _ = list_queries(api)

    Job.objects.all().delete()
    make_jobs(owner, ["queued", "completed", "failed", "queued"] * 10)
    forty, body = list_queries(api)

    assert len(body["results"]) == 40
    assert forty == one


def test_the_job_list_gives_each_queued_job_its_place_in_the_whole_queue(api, owner_key):
    outsider_key, _ = api_key_create(owner_name="someone-else", scopes=["transcribe"])
    # The queue is shared: another owner's earlier job is ahead of the caller's.
    make_jobs(outsider_key.owner, ["queued", "completed"])
    mine = make_jobs(
        owner_key[0].owner, ["completed", "queued", "processing", "queued", "queued"], offset_s=10
    )
    # Same creation time: the lower id goes first.
    twin = Job.objects.create(owner=owner_key[0].owner, created_at=mine[-1].created_at)

    body = api.get("/v1/jobs").json()
    places = {j["job_id"]: (j.get("queue_position"), j.get("jobs_ahead")) for j in body["results"]}

    expected_twin, expected_last = ((4, 3), (5, 4)) if twin.id < mine[-1].id else ((5, 4), (4, 3))
    assert places == {
        str(mine[0].id): (None, None),
        str(mine[1].id): (2, 1),
        str(mine[2].id): (None, None),
        str(mine[3].id): (3, 2),
        str(mine[4].id): expected_last,
        str(twin.id): expected_twin,
    }
    detail = api.get(f"/v1/jobs/{mine[3].id}").json()
    assert (detail["queue_position"], detail["jobs_ahead"]) == (3, 2)


def test_a_requeued_job_takes_its_place_at_the_back_of_the_queue(api, owner_key):
    first, second = make_jobs(owner_key[0].owner, ["queued", "queued"])
    assert first.mark_processing(host="worker-host", pid=1)
    # Its worker died: its message goes to the broker again, behind the second job's.
    assert first.mark_requeued()

    body = api.get("/v1/jobs").json()
    places = {j["job_id"]: (j["queue_position"], j["jobs_ahead"]) for j in body["results"]}

    assert places == {str(second.id): (1, 0), str(first.id): (2, 1)}
    for job, place in ((first, (2, 1)), (second, (1, 0))):
        detail = api.get(f"/v1/jobs/{job.id}").json()
        assert (detail["queue_position"], detail["jobs_ahead"]) == place
