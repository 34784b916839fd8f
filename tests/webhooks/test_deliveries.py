"""A job's end is called back, signed, retried on 5xx, and never sent off the allowlist.

The receivers are real HTTP servers on loopback threads. Two loopback addresses stand for
two hosts: 127.0.0.1 is allowlisted, 127.0.0.2 is not. Tasks run as django-q2 runs them in
its own sync mode, and retries go through its real scheduler.
"""

from __future__ import annotations

import json
import re
import threading
import time
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.db import transaction
from django.utils import timezone
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.models import OrmQ, Schedule
from django_q.scheduler import scheduler
from django_q.signing import SignedPackage

from accounts.services import api_key_create
from tests.conftest import REPO_ROOT
from transcription.models import JOB_EVENT_TASK, Job, JobEvent
from webhooks.apps import JOB_EVENTS_SWEEP_TASK
from webhooks.models import Delivery, DeliveryAttempt, WebhookSecret
from webhooks.services import DELIVERY_TASK, webhook_secret_rotate
from webhooks.tasks import deliveries_recover, delivery_attempt, job_event_deliver, job_events_sweep

pytestmark = pytest.mark.django_db(transaction=True)

API_PAGE = (REPO_ROOT / "docs" / "api.md").read_text(encoding="utf-8")


def documented_verifier():
    """The receiver's check exactly as docs/api.md (Webhooks) prints it."""
    block = next(
        b
        for b in re.findall(r"```python\n(.*?)```", API_PAGE, re.S)
        if "def verify_scribe_signature" in b
    )
    namespace: dict = {}
    exec(block, namespace)  # noqa: S102 - the documented snippet is what is under test
    return namespace["verify_scribe_signature"]


verify = documented_verifier()


class Receiver:
    """Answers POSTs on ``host`` with the next of ``answers`` (the last one repeats).

    An answer is a status code, or a dict with ``status``, ``headers`` and ``delay_s``.
    """

    def __init__(self, host: str = "127.0.0.1", answers=(200,)) -> None:
        self.answers = list(answers)
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append({"headers": dict(self.headers), "body": body})
                answer = outer.answers[min(len(outer.requests), len(outer.answers)) - 1]
                if isinstance(answer, int):
                    answer = {"status": answer}
                time.sleep(answer.get("delay_s", 0))
                self.send_response(answer["status"])
                for name, value in answer.get("headers", {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.server.server_address[1]}/hook"

    def __enter__(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hooks(job_settings, monkeypatch):
    settings = job_settings  # sync mode warms a worker up: it loads the test model
    settings.SCRIBE_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    settings.SCRIBE_WEBHOOK_TIMEOUT_S = 1
    settings.SCRIBE_WEBHOOK_MAX_ATTEMPTS = 3
    settings.SCRIBE_WEBHOOK_RETRY_BASE_S = 30
    settings.SCRIBE_PUBLIC_URL = "http://testserver"
    # django-q2's sync mode: a queued task runs at once, in this process, as a worker would.
    monkeypatch.setattr(Conf, "SYNC", True)
    return settings


@pytest.fixture
def owner(owner_key):
    return owner_key[0].owner


@pytest.fixture
def secret(owner) -> str:
    return webhook_secret_rotate(owner=owner)


def processing_job(owner, url: str) -> Job:
    return Job.objects.create(
        owner=owner,
        status=Job.Status.PROCESSING,
        options={"callback_url": url},
        source_name="call.wav",
        started_at=timezone.now(),
    )


def complete(job: Job) -> bool:
    return job.mark_completed(
        result_path=f"{job.id}.json",
        language="en",
        run={"model_name": "tiny"},
        metrics={"audio_duration_s": 3.0},
    )


def run_due_schedules(monkeypatch) -> None:
    """Let the retry's wait pass, run django-q2's scheduler as the cluster does, then run
    what it queued as a worker would.

    The scheduler runs out of sync mode: in sync mode it would run the task inside its own
    transaction, where the worker's end-of-task connection release breaks it.
    """
    now = timezone.now()
    Schedule.objects.filter(func=DELIVERY_TASK).update(next_run=now - timedelta(seconds=1))
    Schedule.objects.exclude(func=DELIVERY_TASK).update(next_run=now + timedelta(hours=1))
    broker = get_broker()
    with monkeypatch.context() as patch:
        patch.setattr(Conf, "SYNC", False)
        scheduler(broker=broker)
    for ack_id, package in broker.dequeue() or []:
        task = SignedPackage.loads(package)
        assert task["func"] == DELIVERY_TASK
        delivery_attempt(*task["args"])
        broker.acknowledge(ack_id)


def test_a_finished_job_posts_what_get_shows_signed_with_its_owners_secret(
    api, owner, secret, hooks, tone_wav
):
    with Receiver() as receiver, tone_wav.open("rb") as handle:
        # In sync mode the upload's task runs the job at once, on the test model.
        options = json.dumps({"callback_url": receiver.url})
        created = api.post("/v1/jobs", {"file": handle, "options": options})
    assert created.status_code == 202, created.json()
    job_id = created.json()["job_id"]

    shown = api.get(f"/v1/jobs/{job_id}").json()
    assert shown["status"] == "completed"
    [request] = receiver.requests
    assert json.loads(request["body"]) == shown
    delivery = Delivery.objects.get()
    assert request["headers"]["Scribe-Event"] == "job.completed"
    assert request["headers"]["Scribe-Delivery"] == str(delivery.pk)
    assert request["headers"]["Content-Type"] == "application/json"
    signature = request["headers"]["Scribe-Signature"]
    assert verify(secret, request["body"], signature)
    assert not verify(secret, request["body"].replace(b"completed", b"failed"), signature)
    other = webhook_secret_rotate(
        owner=api_key_create(owner_name="outsider", scopes=["transcribe"])[0].owner
    )
    assert not verify(other, request["body"], signature)
    assert delivery.status == Delivery.Status.DELIVERED
    [attempt] = delivery.log.all()
    assert (attempt.status_code, attempt.outcome, attempt.error) == (200, "delivered", "")
    assert attempt.destination == receiver.url


def test_a_signature_older_than_the_tolerance_is_refused_by_the_receiver(owner, secret, hooks):
    with Receiver() as receiver:
        complete(processing_job(owner, receiver.url))
    request = receiver.requests[0]

    signature = request["headers"]["Scribe-Signature"]
    assert verify(secret, request["body"], signature)
    assert not verify(secret, request["body"], signature, tolerance_s=-1)


@pytest.mark.parametrize(
    ("end", "event"),
    [
        (lambda job: job.mark_failed(code="internal_error", message="boom"), "job.failed"),
        (lambda job: job.mark_cancelled(), "job.cancelled"),
        (complete, "job.completed"),
    ],
)
def test_every_terminal_state_is_called_back_once(owner, secret, hooks, end, event):
    with Receiver() as receiver:
        job = processing_job(owner, receiver.url)
        assert end(job)
        assert not end(Job.objects.get(pk=job.pk)), "a second transition loses"
        untracked = Job.objects.create(owner=owner, status=Job.Status.PROCESSING)
        end(untracked)

    assert [r["headers"]["Scribe-Event"] for r in receiver.requests] == [event]
    assert json.loads(receiver.requests[0]["body"])["status"] == event.removeprefix("job.")
    assert Delivery.objects.get().job_id == job.pk


def test_a_queued_job_cancelled_through_the_api_is_called_back(api, owner, secret, hooks):
    with Receiver() as receiver:
        job = Job.objects.create(owner=owner, options={"callback_url": receiver.url})
        job_id = str(job.pk)
        assert api.post(f"/v1/jobs/{job_id}/cancel").status_code == 200

    [request] = receiver.requests
    assert request["headers"]["Scribe-Event"] == "job.cancelled"
    assert json.loads(request["body"])["job_id"] == job_id


def test_a_500_is_retried_with_backoff_through_the_scheduler_until_it_is_delivered(
    owner, secret, hooks, monkeypatch
):
    with Receiver(answers=[500, 503, 200]) as receiver:
        before = timezone.now()
        complete(processing_job(owner, receiver.url))
        first_retry = Schedule.objects.get(func=DELIVERY_TASK)
        run_due_schedules(monkeypatch)
        second_retry = Schedule.objects.get(func=DELIVERY_TASK)
        between = timezone.now()
        run_due_schedules(monkeypatch)

    assert len(receiver.requests) == 3
    assert (first_retry.next_run - before).total_seconds() == pytest.approx(30, abs=5)
    assert (second_retry.next_run - between).total_seconds() == pytest.approx(60, abs=5)
    assert not Schedule.objects.filter(func=DELIVERY_TASK).exists(), "nothing left to retry"
    ids = {r["headers"]["Scribe-Delivery"] for r in receiver.requests}
    assert len(ids) == 1, "one delivery, retried: the receiver can drop duplicates"
    assert all(
        verify(secret, r["body"], r["headers"]["Scribe-Signature"]) for r in receiver.requests
    )
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == (Delivery.Status.DELIVERED, 3)
    log = list(delivery.log.values_list("number", "status_code", "outcome"))
    assert log == [(1, 500, "retry"), (2, 503, "retry"), (3, 200, "delivered")]
    assert all(a.duration_ms >= 0 and a.started_at >= before for a in delivery.log.all())


def test_attempts_are_bounded_and_the_last_one_says_it_gave_up(owner, secret, hooks, monkeypatch):
    with Receiver(answers=[502]) as receiver:
        complete(processing_job(owner, receiver.url))
        run_due_schedules(monkeypatch)
        run_due_schedules(monkeypatch)
        run_due_schedules(monkeypatch)  # nothing is due any more

    assert len(receiver.requests) == 3
    delivery = Delivery.objects.get()
    assert delivery.status == Delivery.Status.FAILED
    last = delivery.log.last()
    assert (last.number, last.outcome) == (3, "failed")
    assert "gave up after 3 attempts" in last.error
    assert not Schedule.objects.filter(func=DELIVERY_TASK).exists()


def test_a_timeout_and_a_refused_connection_are_retried(owner, secret, hooks):
    with Receiver(answers=[{"status": 200, "delay_s": 2}]) as slow:
        complete(processing_job(owner, slow.url))
    with Receiver() as gone:
        closed_url = gone.url
    complete(processing_job(owner, closed_url))

    timeout, refused = (Delivery.objects.get(url=url).log.get() for url in (slow.url, closed_url))
    assert timeout.outcome == refused.outcome == "retry"
    assert timeout.error.startswith("timed out after 1 s")
    assert "ConnectError" in refused.error
    assert Schedule.objects.filter(func=DELIVERY_TASK).count() == 2


def test_a_client_error_is_not_retried(owner, secret, hooks):
    with Receiver(answers=[410]) as receiver:
        complete(processing_job(owner, receiver.url))

    attempt = DeliveryAttempt.objects.get()
    assert (attempt.status_code, attempt.outcome) == (410, "failed")
    assert Delivery.objects.get().status == Delivery.Status.FAILED
    assert not Schedule.objects.filter(func=DELIVERY_TASK).exists()


def test_a_callback_off_the_allowlist_is_refused_at_submission_naming_the_setting(
    api, owner, secret, hooks, tone_wav
):
    with Receiver(host="127.0.0.2") as elsewhere, tone_wav.open("rb") as handle:
        options = json.dumps({"callback_url": elsewhere.url})
        response = api.post("/v1/jobs", {"file": handle, "options": options})

    assert response.status_code == 400
    [message] = response.json()["error"]["fields"]["options"]["callback_url"]
    assert "host 127.0.0.2 is not in SCRIBE_WEBHOOK_ALLOWED_HOSTS" in message
    assert elsewhere.requests == []
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("url", "says"),
    [("ftp://127.0.0.1/hook", "http or https"), ("not a url", "Enter a valid URL")],
)
def test_a_callback_url_that_is_not_http_is_a_field_error(api, secret, hooks, tone_wav, url, says):
    with tone_wav.open("rb") as handle:
        options = json.dumps({"callback_url": url})
        response = api.post("/v1/jobs", {"file": handle, "options": options})

    assert response.status_code == 400
    assert says in response.json()["error"]["fields"]["options"]["callback_url"][0]


def test_an_owner_without_a_secret_is_told_to_ask_the_operator(api, hooks, tone_wav):
    with tone_wav.open("rb") as handle:
        options = json.dumps({"callback_url": "http://127.0.0.1:9/hook"})
        response = api.post("/v1/jobs", {"file": handle, "options": options})

    assert response.status_code == 400
    [message] = response.json()["error"]["fields"]["options"]["callback_url"]
    assert "no signing secret" in message and "Webhook secrets" in message


def test_a_host_taken_off_the_allowlist_after_submission_is_never_contacted(owner, secret, hooks):
    with Receiver(host="127.0.0.2") as elsewhere:
        job = processing_job(owner, elsewhere.url)  # accepted while 127.0.0.2 was listed
        complete(job)

    assert elsewhere.requests == []
    attempt = DeliveryAttempt.objects.get()
    assert attempt.outcome == "refused"
    assert attempt.error.startswith("refused: host 127.0.0.2 is not in SCRIBE_WEBHOOK_ALLOWED")
    assert Delivery.objects.get().status == Delivery.Status.FAILED
    assert not Schedule.objects.filter(func=DELIVERY_TASK).exists()


@pytest.mark.parametrize("status", [302, 307, 308])
def test_a_redirect_off_the_allowlist_is_refused_and_never_followed(owner, secret, hooks, status):
    with Receiver(host="127.0.0.2") as elsewhere:
        redirect = {"status": status, "headers": {"Location": elsewhere.url}}
        with Receiver(answers=[redirect]) as allowed:
            complete(processing_job(owner, allowed.url))

    assert len(allowed.requests) == 1
    assert elsewhere.requests == []
    attempt = DeliveryAttempt.objects.get()
    assert attempt.outcome == "refused"
    assert attempt.error.startswith("refused: redirect to 127.0.0.2 is not in")
    assert attempt.destination == elsewhere.url
    assert not Schedule.objects.filter(func=DELIVERY_TASK).exists()


def test_a_rotated_secret_signs_beside_the_old_one_for_24_hours(owner, secret, hooks):
    new = webhook_secret_rotate(owner=owner)
    with Receiver() as receiver:
        complete(processing_job(owner, receiver.url))
        WebhookSecret.objects.filter(owner=owner).update(
            previous_valid_until=timezone.now() - timedelta(seconds=1)
        )
        complete(processing_job(owner, receiver.url))

    during, after = ((r["body"], r["headers"]["Scribe-Signature"]) for r in receiver.requests)
    assert new != secret
    assert verify(new, *during) and verify(secret, *during)
    assert verify(new, *after) and not verify(secret, *after)


def test_a_delivery_whose_message_was_lost_is_sent_again_once(owner, secret, hooks, monkeypatch):
    with Receiver() as receiver:
        with monkeypatch.context() as patch:
            patch.setattr(Conf, "SYNC", False)  # the attempt's message goes to the broker…
            complete(processing_job(owner, receiver.url))
            run_broker_tasks(expect=JOB_EVENT_TASK)  # the job's end becomes a delivery
        OrmQ.objects.all().delete()  # …which loses it (Redis flushed, say)
        delivery = Delivery.objects.get()
        assert deliveries_recover() == 0, "not overdue yet"
        hooks.SCRIBE_REQUEUE_AFTER_S = 0

        assert deliveries_recover() == 1
        assert deliveries_recover() == 0, "sent again once, then it was attempted"
        delivery_attempt(str(delivery.pk), 1)  # the lost message turns up after all

    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (Delivery.Status.DELIVERED, 1)


def run_broker_tasks(*, expect: str) -> int:
    """Run what the broker holds as a worker would; each must be a task of ``expect``."""
    broker = get_broker()
    ran = 0
    for ack_id, package in broker.dequeue() or []:
        task = SignedPackage.loads(package)
        assert task["func"] == expect
        func = {JOB_EVENT_TASK: job_event_deliver, DELIVERY_TASK: delivery_attempt}[expect]
        func(*task["args"])
        broker.acknowledge(ack_id)
        ran += 1
    return ran


def test_a_job_end_is_recorded_with_the_transition_or_not_at_all(owner, hooks):
    job = processing_job(owner, "http://127.0.0.1:9/hook")

    with pytest.raises(RuntimeError), transaction.atomic():
        assert job.mark_failed(code="internal_error", message="boom")
        raise RuntimeError("the transaction is rolled back")

    assert Job.objects.get(pk=job.pk).status == Job.Status.PROCESSING
    assert not JobEvent.objects.exists()
    job.refresh_from_db()
    assert job.mark_failed(code="internal_error", message="boom")
    event = JobEvent.objects.get()
    assert (event.job_id, event.name) == (job.pk, "job.failed")


def test_a_job_end_whose_prompt_message_was_lost_is_called_back_by_the_minute_sweep(
    owner, secret, hooks, monkeypatch
):
    with Receiver() as receiver:
        with monkeypatch.context() as patch:
            patch.setattr(Conf, "SYNC", False)  # the prompt message goes to the broker…
            complete(processing_job(owner, receiver.url))
        OrmQ.objects.all().delete()  # …and never reaches a worker (its process died)
        assert JobEvent.objects.unhandled().count() == 1
        assert not Delivery.objects.exists() and receiver.requests == []

        sweep = Schedule.objects.get(func=JOB_EVENTS_SWEEP_TASK)
        assert (sweep.schedule_type, sweep.minutes) == (Schedule.MINUTES, 1)
        Schedule.objects.update(next_run=timezone.now() + timedelta(hours=1))
        Schedule.objects.filter(pk=sweep.pk).update(next_run=timezone.now() - timedelta(seconds=1))
        with monkeypatch.context() as patch:
            patch.setattr(Conf, "SYNC", False)
            scheduler(broker=get_broker())
            [(ack_id, package)] = get_broker().dequeue()
            assert SignedPackage.loads(package)["func"] == JOB_EVENTS_SWEEP_TASK
            assert job_events_sweep() == 1
            get_broker().acknowledge(ack_id)
            assert job_events_sweep() == 0, "handled once"
            assert run_broker_tasks(expect=DELIVERY_TASK) == 1

    [request] = receiver.requests
    assert request["headers"]["Scribe-Event"] == "job.completed"
    assert Delivery.objects.get().status == Delivery.Status.DELIVERED
    assert not JobEvent.objects.unhandled().exists()


def test_an_event_claimed_by_the_prompt_task_and_the_sweep_is_delivered_once(
    owner, secret, hooks, monkeypatch
):
    with Receiver() as receiver, monkeypatch.context() as patch:
        patch.setattr(Conf, "SYNC", False)
        complete(processing_job(owner, receiver.url))
        assert job_events_sweep() == 1  # the sweep gets there first
        assert run_broker_tasks(expect=JOB_EVENT_TASK) == 1  # then the prompt task
        assert run_broker_tasks(expect=DELIVERY_TASK) == 1

    assert len(receiver.requests) == 1
    assert Delivery.objects.count() == 1


def test_a_job_without_a_callback_url_leaves_a_handled_event_and_no_delivery(owner, hooks):
    job = Job.objects.create(owner=owner, status=Job.Status.PROCESSING)

    assert job.mark_cancelled()

    assert JobEvent.objects.get().handled_at is not None
    assert not Delivery.objects.exists()
