#!/usr/bin/env python
"""A soak with faults: the production topology under steady mixed load, broken twice.

On a fresh PostgreSQL database and a redis-server of its own (append-only, as compose runs
it), starts daphne, ``manage.py qcluster`` and ``manage.py runworker realtime`` as separate
processes under a restarting supervisor (soak_stack.py), with Whisper tiny.en on both
lanes, and for ``--minutes`` runs:

- four live streams at real time over ``/v1/stream`` (the 41 s live source of
  tests/realmodel.py looped, each client at its own offset), each session ``--session-s``
  of audio, then ``stop`` and a new session; a client that is told its worker is gone, or
  is dropped, reconnects with backoff and starts a new session at the live position;
- uploads arriving steadily (jfk.flac, hotwords.mp3, stereo_diarization.wav in turn,
  every ``--upload-every-s``), each with a ``callback_url``;
- 50 pollers on ``GET /v1/jobs/{id}`` and the job lists;
- a loopback webhook receiver that checks each callback's signature.

At 40 % of the run it SIGKILLs redis-server and starts it again ``--redis-down-s`` later;
at 60 % it SIGKILLs the realtime worker, which the supervisor starts again a second later.
A fault window is the 30 s after each fault.

Then it stops the load, waits (``--drain-s``) for every job to end and every callback to
arrive, and reports: 5xx outside and inside the windows, jobs lost or stuck, finals a
client received that its job does not hold (or holds twice), webhooks lost, clients told
and reconnected, time to recover, and the RSS of every process at start/middle/end. The
last line printed is the whole report as one JSON object.

    .venv/bin/python benchmarks/soak.py --minutes 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import psycopg
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))

from soak_report import report  # noqa: E402
from soak_stack import (  # noqa: E402
    Receiver,
    Redis,
    Supervisor,
    production_processes,
    rss_sample,
)

from tests.conftest import SHARED_AUDIO  # noqa: E402
from tests.e2e.stack import PG_ADMIN_URL, free_port  # noqa: E402
from tests.e2e.stack import manage as stack_manage  # noqa: E402

FAULT_WINDOW_S = 30.0
STREAMS = 4
POLLERS = 50
SAMPLE_RATE_HZ = 16000
FRAME_S = 0.1
FRAME = int(SAMPLE_RATE_HZ * FRAME_S)
UPLOAD_CLIPS = ("jfk.flac", "hotwords.mp3", "stereo_diarization.wav")
TERMINAL = ("completed", "failed", "cancelled")


@dataclass
class Session:
    client: int
    opened: float  # seconds since the load started
    job_id: str | None = None
    ready: float | None = None
    finals: list[tuple[int, str, float]] = field(default_factory=list)  # id, text, at
    errors: list[tuple[str, float, str]] = field(default_factory=list)  # code, at, message
    partials: int = 0
    closed_event: float | None = None
    close_code: int | None = None
    handshake_status: int | None = None  # an HTTP status when the handshake failed
    audio_s: float = 0.0
    ended: float | None = None
    final_ends: dict[int, float | None] = field(default_factory=dict)  # from the stored rows
    ready_event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def completed(self) -> bool:
        return self.closed_event is not None

    @property
    def told_worker_lost(self) -> bool:
        return any(code == "worker_lost" for code, _, _ in self.errors)


@dataclass
class Fault:
    name: str
    at: float
    back: float | None = None  # when the broken part was started again

    def holds(self, t: float) -> bool:
        return self.at <= t <= self.at + FAULT_WINDOW_S


@dataclass
class Soak:
    args: argparse.Namespace
    base_url: str
    ws_url: str
    key: str
    hook_url: str
    source: np.ndarray
    t0: float = field(default_factory=time.monotonic)
    wall0: float = field(default_factory=time.time)
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    http: list[tuple[float, str, int]] = field(default_factory=list)  # at, what, status
    uploads: list[tuple[float, str]] = field(default_factory=list)  # at, job id
    sessions: list[Session] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    known_ids: list[str] = field(default_factory=list)
    skipped_audio_s: float = 0.0
    rss: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.looped = np.concatenate([self.source, self.source[:FRAME]])

    def now(self) -> float:
        return time.monotonic() - self.t0

    def since(self, monotonic: float) -> float:
        return monotonic - self.t0

    def position(self, client: int) -> int:
        """The sample this client's live source is speaking now."""
        offset = client * len(self.source) // STREAMS
        return offset + int(self.now() * SAMPLE_RATE_HZ)

    def frame(self, sample: int) -> bytes:
        start = sample % len(self.source)
        return self.looped[start : start + FRAME].tobytes()

    async def pause(self, seconds: float) -> None:
        """Sleep, or return at once when the load stops."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), timeout=max(0.0, seconds))


# --- live streams ------------------------------------------------------------------------


async def stream_client(soak: Soak, client: int) -> None:
    """Sessions one after another, as a well-written client holds a live feed open: after
    a ``stop`` and its ``closed``, a new session; after a refusal (4429, 4503), a failed
    handshake or a dropped session (4500 ``worker_lost``, a broken socket), a new session
    after a backoff (0.5 s doubling to 8 s), at the live position: what was said while no
    session was open is not transcribed (counted as skipped audio)."""
    backoff = 0.5
    cursor: int | None = None
    while not soak.stopping.is_set():
        session = Session(client=client, opened=soak.now())
        soak.sessions.append(session)
        position = soak.position(client)
        if cursor is not None:
            soak.skipped_audio_s += max(0, position - cursor) / SAMPLE_RATE_HZ
        cursor = await run_session(soak, session, position)
        session.ended = soak.now()
        if session.completed:
            backoff = 0.5
            continue
        await soak.pause(backoff)
        backoff = min(backoff * 2, 8.0)


async def run_session(soak: Soak, session: Session, cursor: int) -> int:
    """One session; returns the position its audio reached."""
    options = {"language": "en"}  # a live session takes no callback_url
    try:
        ws = await websockets.connect(
            soak.ws_url,
            additional_headers={"Authorization": f"Bearer {soak.key}"},
            open_timeout=30,
            max_size=None,
        )
    except InvalidStatus as exc:
        session.handshake_status = exc.response.status_code
        soak.http.append((soak.now(), "ws handshake", exc.response.status_code))
        return cursor
    except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
        session.handshake_status = 0
        session.errors.append((type(exc).__name__, soak.now(), str(exc)))
        soak.http.append((soak.now(), "ws handshake", 0))
        return cursor
    async with ws:
        listener = asyncio.ensure_future(listen(soak, ws, session))
        try:
            await ws.send(json.dumps({"type": "start", "options": options}))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(session.ready_event.wait(), timeout=30)
            if session.job_id is None:
                await ws.close()
                await listener
                session.close_code = ws.close_code
                return cursor
            cursor = await send_audio(soak, ws, session, cursor, listener)
            if not listener.done():
                await ws.send(json.dumps({"type": "stop"}))
            # The worker flushes what is left: under load, a backlog of a few seconds.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(listener), timeout=180)
        except ConnectionClosed:
            pass
        if not listener.done():
            await ws.close()
        await listener
    session.close_code = ws.close_code
    return cursor


async def send_audio(soak: Soak, ws, session: Session, cursor: int, listener) -> int:
    """Send what is said, 100 ms a frame, until the session's length or the load's end."""
    sent = 0
    limit = int(soak.args.session_s * SAMPLE_RATE_HZ)
    while not listener.done() and not soak.stopping.is_set() and sent < limit:
        target = soak.position(session.client)
        while cursor + FRAME <= target and sent < limit:
            await ws.send(soak.frame(cursor))
            cursor += FRAME
            sent += FRAME
        await asyncio.sleep(FRAME_S)
    session.audio_s = sent / SAMPLE_RATE_HZ
    return cursor


async def listen(soak: Soak, ws, session: Session) -> None:
    try:
        async for raw in ws:
            event = json.loads(raw)
            at = soak.now()
            kind = event.get("type")
            if kind == "ready":
                session.job_id, session.ready = event["job_id"], at
                soak.known_ids.append(event["job_id"])
                session.ready_event.set()
            elif kind == "final":
                segment = event["segment"]
                session.finals.append((segment["id"], segment["text"].strip(), at))
            elif kind == "partial":
                session.partials += 1
            elif kind == "error":
                session.errors.append((event.get("code", ""), at, event.get("message", "")))
            elif kind == "closed":
                session.closed_event = at
    except ConnectionClosed:
        return


# --- uploads and pollers ----------------------------------------------------------------


async def uploader(soak: Soak, client: httpx.AsyncClient) -> None:
    """One upload every ``--upload-every-s``, each in its own task: a slow answer does
    not slow the arrivals."""
    clips = [(name, (SHARED_AUDIO / name).read_bytes()) for name in UPLOAD_CLIPS]
    options = json.dumps({"language": "en", "callback_url": f"{soak.hook_url}?upload=1"})
    tasks: set[asyncio.Task] = set()

    async def one(name: str, data: bytes) -> None:
        at = soak.now()
        try:
            response = await client.post(
                "/v1/jobs", files={"file": (name, data)}, data={"options": options}
            )
        except httpx.HTTPError:
            soak.http.append((at, "upload", 0))
            return
        soak.http.append((at, "upload", response.status_code))
        if response.status_code == 202:
            job_id = response.json()["job_id"]
            soak.uploads.append((at, job_id))
            soak.known_ids.append(job_id)

    number = 0
    while not soak.stopping.is_set():
        name, data = clips[number % len(clips)]
        task = asyncio.ensure_future(one(name, data))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        number += 1
        await soak.pause(number * soak.args.upload_every_s - soak.now())
    if tasks:
        await asyncio.wait(tasks, timeout=120)


async def poller(soak: Soak, client: httpx.AsyncClient, number: int) -> None:
    """A job's status four times in five, else a page of the list (all, or one status)."""
    rng = random.Random(number)
    await soak.pause(rng.random() * soak.args.poll_every_s)
    while not soak.stopping.is_set():
        if soak.known_ids and rng.random() < 0.8:
            what, url = "job", f"/v1/jobs/{rng.choice(soak.known_ids)}"
        else:
            what, url = "list", rng.choice(["/v1/jobs", "/v1/jobs?status=completed"])
        at = soak.now()
        try:
            status = (await client.get(url)).status_code
        except httpx.HTTPError:
            status = 0
        soak.http.append((at, what, status))
        await soak.pause(soak.args.poll_every_s)


# --- faults and memory --------------------------------------------------------------------


async def faults(soak: Soak, redis: Redis, supervisor: Supervisor) -> None:
    minutes_s = soak.args.minutes * 60
    await soak.pause(minutes_s * 0.4 - soak.now())
    if soak.stopping.is_set():
        return
    soak.rss["middle"] = await asyncio.to_thread(rss_sample, roles(supervisor, redis))
    fault = Fault("redis restart", soak.now())
    soak.faults.append(fault)
    print(f"  [{fault.at:6.1f} s] SIGKILL redis-server", flush=True)
    await asyncio.to_thread(redis.kill)
    await soak.pause(soak.args.redis_down_s)
    await asyncio.to_thread(redis.start)
    fault.back = soak.now()
    print(f"  [{fault.back:6.1f} s] redis-server started again", flush=True)

    await soak.pause(minutes_s * 0.6 - soak.now())
    if soak.stopping.is_set():
        return
    fault = Fault("realtime worker SIGKILL", soak.now())
    soak.faults.append(fault)
    starts = supervisor.children["runworker"].starts
    pid = supervisor.sigkill("runworker")
    print(f"  [{fault.at:6.1f} s] SIGKILL the realtime worker (pid {pid})", flush=True)
    while not soak.stopping.is_set():
        child = supervisor.children["runworker"]
        if child.starts > starts and "ready in" in supervisor.log("runworker"):
            fault.back = soak.now()
            print(f"  [{fault.back:6.1f} s] the new realtime worker is ready", flush=True)
            return
        await asyncio.sleep(0.2)


def roles(supervisor: Supervisor, redis: Redis) -> dict:
    return {
        "daphne": lambda: supervisor.pid("daphne"),
        "qcluster": lambda: supervisor.pid("qcluster"),
        "runworker": lambda: supervisor.pid("runworker"),
        "redis-server": lambda: (redis.pids() or [None])[0],
    }


async def memory_at_start(soak: Soak, supervisor: Supervisor, redis: Redis) -> None:
    """The first sample once the load is under way (every process has done its work once:
    the batch model loaded, sessions decoding), not at an idle start."""
    await soak.pause(soak.args.warmup_s)
    soak.rss["start"] = await asyncio.to_thread(rss_sample, roles(supervisor, redis))


async def load(soak: Soak, supervisor: Supervisor, redis: Redis) -> None:
    headers = {"Authorization": f"Bearer {soak.key}"}
    limits = httpx.Limits(max_connections=POLLERS + 20)
    async with httpx.AsyncClient(
        base_url=soak.base_url, headers=headers, timeout=30, limits=limits
    ) as client:
        tasks = [
            *(asyncio.ensure_future(stream_client(soak, n)) for n in range(STREAMS)),
            asyncio.ensure_future(uploader(soak, client)),
            *(asyncio.ensure_future(poller(soak, client, n)) for n in range(POLLERS)),
            asyncio.ensure_future(faults(soak, redis, supervisor)),
            asyncio.ensure_future(memory_at_start(soak, supervisor, redis)),
        ]
        await soak.pause(soak.args.minutes * 60)
        soak.stopping.set()
        soak.rss["end"] = await asyncio.to_thread(rss_sample, roles(supervisor, redis))
        print(f"  [{soak.now():6.1f} s] load stopped; sessions finishing", flush=True)
        await asyncio.gather(*tasks)


def sessions_dump(soak: Soak, path: Path) -> None:
    """Every live session as its client saw it (times in seconds since the load started),
    for a closer look at a run: ``--keep`` keeps the directory."""
    rows = [
        {
            "client": s.client,
            "opened": s.opened,
            "ready": s.ready,
            "ended": s.ended,
            "job_id": s.job_id,
            "finals": len(s.finals),
            "partials": s.partials,
            "errors": [(code, at) for code, at, _ in s.errors],
            "closed_event": s.closed_event,
            "close_code": s.close_code,
            "handshake_status": s.handshake_status,
            "audio_s": s.audio_s,
        }
        for s in soak.sessions
    ]
    path.write_text(json.dumps({"faults": [vars(f) for f in soak.faults], "sessions": rows}))
    print(f"sessions: {path}")


# --- setting up ------------------------------------------------------------------------


def live_source(tmp: Path) -> np.ndarray:
    from tests.realmodel import live_source as write_live_source
    from transcription.engine.audio import decode_all

    audio = decode_all(write_live_source(tmp / "live.wav"))
    return (np.clip(audio, -1, 1) * 32767).astype("<i2")


def manage(env: dict[str, str], *args: str) -> str:
    """What ``manage.py`` prints last (logs may come first)."""
    return stack_manage(env, *args, timeout=300).strip().splitlines()[-1]


def environment(args, tmp: Path, database_url: str, redis: Redis, model_dir: Path) -> dict:
    metrics = tmp / "metrics"
    metrics.mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis.url,
        "SCRIBE_MEDIA_ROOT": str(tmp / "media"),
        "SCRIBE_MODELS_DIR": str(tmp / "models"),
        "SCRIBE_BATCH_MODEL": str(model_dir),
        "SCRIBE_REALTIME_MODEL": str(model_dir),
        "SCRIBE_DEVICE": "cpu",
        "SCRIBE_CPU_THREADS": str(args.threads),
        "SCRIBE_WORKERS": "1",
        "SCRIBE_REALTIME_MAX_SESSIONS": str(STREAMS),
        "SCRIBE_WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        # The throttle stays on (its counters live in Redis) but never limits the pollers.
        "SCRIBE_RATE_LIMIT": "1000000/minute",
        "SCRIBE_LOG_LEVEL": "INFO",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics),
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    return env


def wait_serving(soak_url: str, supervisor: Supervisor, timeout_s: float = 300) -> None:
    """Until /health/ready answers 200 and the realtime worker has warmed its model."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            ready = httpx.get(f"{soak_url}/health/ready", timeout=5).status_code == 200
            if ready and "ready in" in supervisor.log("runworker"):
                return
        time.sleep(0.5)
    raise RuntimeError(
        "the stack did not become ready: "
        + supervisor.log("daphne")[-2000:]
        + supervisor.log("runworker")[-2000:]
    )


def run(args, tmp: Path, model_dir: Path) -> dict:
    database = f"scribe_soak_{uuid.uuid4().hex[:10]}"
    database_url = f"postgresql://postgres@127.0.0.1:5432/{database}"
    redis = Redis(tmp / "redis")
    receiver = Receiver()
    supervisor: Supervisor | None = None
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database}"')
    try:
        redis.start()
        env = environment(args, tmp, database_url, redis, model_dir)
        manage(env, "migrate", "--no-input")
        key = manage(env, "create_api_key", "--owner", "soak", "--scopes", "transcribe", "stream")
        receiver.secret = manage(
            env,
            "shell",
            "-c",
            "from accounts.models import Owner; from webhooks.services import "
            "webhook_secret_rotate; print(webhook_secret_rotate(owner=Owner.objects.get("
            "name='soak')))",
        )
        hook_url = receiver.start()
        port = free_port()
        supervisor = Supervisor(env, tmp / "logs")
        production_processes(supervisor, port)
        supervisor.start_watching()
        base_url = f"http://127.0.0.1:{port}"
        print(f"logs in {tmp / 'logs'}; waiting for the stack to be ready…", flush=True)
        wait_serving(base_url, supervisor)
        soak = Soak(
            args=args,
            base_url=base_url,
            ws_url=f"ws://127.0.0.1:{port}/v1/stream",
            key=key,
            hook_url=hook_url,
            source=live_source(tmp),
        )
        print(f"load for {args.minutes:g} min…", flush=True)
        asyncio.run(load(soak, supervisor, redis))
        figures = report(soak, supervisor, receiver, database_url)
        sessions_dump(soak, tmp / "sessions.json")
        return figures
    finally:
        if supervisor is not None:
            supervisor.stop()
        receiver.stop()
        redis.kill()
        if not args.keep:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the load")
    parser.add_argument("--session-s", type=float, default=120.0, help="audio per session")
    parser.add_argument("--upload-every-s", type=float, default=10.0)
    parser.add_argument("--poll-every-s", type=float, default=2.0, help="per poller")
    parser.add_argument("--redis-down-s", type=float, default=5.0)
    parser.add_argument("--warmup-s", type=float, default=60.0, help="first RSS sample")
    parser.add_argument("--drain-s", type=float, default=360.0, help="wait for jobs to end")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per model")
    parser.add_argument("--keep", action="store_true", help="keep the database (logs stay)")
    args = parser.parse_args()
    os.environ["HF_HUB_OFFLINE"] = "1"
    from tests.realmodel import missing_real_model_message, real_model_dir

    model_dir = real_model_dir()
    if model_dir is None:
        print(missing_real_model_message())
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="scribe-soak-"))
    result = run(args, tmp, model_dir)
    print(json.dumps({"soak": result}, sort_keys=True))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
