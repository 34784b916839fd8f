"""The realtime worker: owns the realtime model and every live session of its process.

Run out of process as ``manage.py runworker realtime`` (one per GPU), or, with the
in-memory channel layer, inside the web process (``realtime.channel_worker``). Consumers talk
to it through the channel layer; it never blocks its event loop: decoding runs in a
one-thread executor (one model, one decode at a time). Every session that is due in the
same tick is stepped together: their buffers are decoded as one batch
(``decode_buffers``), so a GPU serves more sessions per model at about the cost of one.
Which sessions are due, their turn and what a step decodes and keeps are decided in
``realtime.scheduler``; this module does the I/O around it.

Nothing a session does can stop the others: a step, a storage write or a send that fails
ends that session with an ``error`` event and the rest go on. The scheduler and the
keep-alive are supervised: if either dies, the other is stopped and every consumer is
told at once (``stream.lost``, close code 4500) instead of seeing ticks from a worker that
no longer decodes.

Nor can a client that vanishes hold its session: consumers send a keep-alive, and a
session not heard from for CONSUMER_SILENCE_S is stopped as its consumer would have
stopped it (the web process died, or the stop was lost while Redis restarted).

Several workers share out the sessions (``realtime.placement``): each advertises its free
slots while it runs, and a ``session.open`` it has no room for is passed on to the next.

Messages in (from consumers): ``session.open`` on this worker's own channel (or on the
shared ``realtime`` channel while no worker is advertised), then ``session.start``,
``session.audio``, ``session.finalize``, ``session.alive``, ``session.stop`` on its own
channel (where it also sends itself ``worker.sweep``); ``worker.start`` when it starts.
Messages out (to a consumer's channel): ``stream.opened`` or
``stream.refused``, then ``stream.event`` (the client's JSON), ``stream.tick`` and, if
the worker fails, ``stream.lost``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from django.conf import settings

from glossary.bias import HotwordChoice, glossary_bias
from realtime import placement, services
from realtime.audio import FrameDecoder
from realtime.capacity import Capacity, measure_capacity
from realtime.scheduler import (
    BACKLOG_MAX_S,
    BACKLOG_WARN_S,
    LiveSession,
    Step,
    backlog_report,
    channel_session_id,
    decode_together,
    due_steps,
    in_turn,
    live_stream,
    request_decodes,
    step_events,
)
from realtime.status import realtime_worker_report
from scribe import metrics as scribe_metrics
from scribe.db import unit_of_work
from scribe.logs import log_context
from transcription.engine import (
    LoadedModel,
    Metrics,
    decode_buffers,
    model_served_name,
    run_record,
    token_counter,
)
from transcription.lanes import (
    device_plan_build,
    lane_model_name,
    model_load,
    realtime_planned_sessions,
    worker_slot,
)
from transcription.options import JobOptions
from transcription.priority import realtime_backlog_report

logger = logging.getLogger(__name__)

TICK_S = 2.0  # keep-alive to consumers: silence from a worker means it is gone
# A consumer sends ``session.alive`` every TICK_S: a session that sent nothing for this long
# has lost its client (the web process died, or its stop was lost with the channel layer).
CONSUMER_SILENCE_S = 15.0
# How long a consumer waits for a worker to open its session before refusing the client
# (4503). An open read later than OPEN_ANSWER_S after it was sent is ignored: its answer
# might reach the consumer after it gave up, and the session would be held for nobody.
OPEN_TIMEOUT_S = 10.0
OPEN_ANSWER_S = OPEN_TIMEOUT_S - 2.0
HEARTBEAT_S = 5.0
_capacity_lock = threading.Lock()
_capacity: Capacity | None = None


def realtime_model() -> LoadedModel:
    """The realtime lane's model of this process, loaded on first use: on this worker's
    device of the host's plan for both lanes (one realtime worker per device), where the
    plan holds its model and the memory of the sessions it decodes together."""
    name = lane_model_name("realtime")
    plan = device_plan_build(model=name, lane="realtime")
    slot = worker_slot(kind="realtime", count=plan.total_workers)
    return model_load(model=name, plan=plan, slot=slot)


def warm_up() -> tuple[LoadedModel, Capacity]:
    """Load the realtime model and time its steps (which also warms it up), once per
    process, so the first session starts at once and the session cap is measured."""
    global _capacity
    started = time.perf_counter()
    model = realtime_model()
    with _capacity_lock:
        if _capacity is None:
            _capacity = measure_capacity(model)
            realtime_worker_report(
                model=model, capacity=_capacity, session_cap=session_limit(_capacity)
            )
            scribe_metrics.model_loaded(
                lane="realtime",
                model=model.name,
                device=model.device,
                compute_type=model.compute_type,
                degraded=bool(model.fallback),
            )
            logger.info(
                "realtime model %s ready in %.1f s", model.name, time.perf_counter() - started
            )
        return model, _capacity


def session_limit(capacity: Capacity) -> int:
    """Sessions this worker admits: the operator's number, else the measured one within
    what the device plan holds memory for (every due session is decoded in one batch)."""
    return settings.SCRIBE_REALTIME_MAX_SESSIONS or min(
        capacity.sessions, realtime_planned_sessions()
    )


def warm_up_in_background() -> threading.Thread:
    """Warm the realtime model up in a thread, so a process starts serving meanwhile."""

    def run() -> None:
        try:
            warm_up()
        except Exception:  # a missing model: sessions will report it when they start
            logger.exception("could not load the realtime model at start-up")

    thread = threading.Thread(target=run, name="realtime-warm-up", daemon=True)
    thread.start()
    return thread


class RealtimeWorker(AsyncConsumer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: dict[str, LiveSession] = {}
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
        self.model: LoadedModel | None = None
        self.capacity: Capacity | None = None
        self.wake = asyncio.Event()
        self.room_changed = asyncio.Event()  # renew the advert now (realtime.placement)
        self.tasks: list[asyncio.Task] = []
        self.turn = 0
        self.reported_late = False

    async def dispatch(self, message: dict) -> None:
        session = self.sessions.get(message.get("session_id") or "")
        if session is not None:
            session.heard_at = time.monotonic()
        # Everything a message's handler logs names its session (SCRIBE_LOG_FORMAT=json).
        with log_context(session_id=message.get("session_id")):
            await super().dispatch(message)

    # --- messages -----------------------------------------------------------------------

    async def worker_start(self, message: dict) -> None:
        """Sent by ``realtime.channel_worker`` as the process starts: advertise from now."""
        self._start_background()

    async def session_open(self, message: dict) -> None:
        self._start_background()
        reply = message["reply_channel"]
        if self.capacity is None:
            try:
                self.model, self.capacity = await self._loop_run(warm_up)
            except Exception:  # no model: the session's start will say what is missing
                logger.exception("the realtime model could not be loaded")
        if time.time() - message.get("sent_at", time.time()) > OPEN_ANSWER_S:
            # Its consumer refuses the client (4503) before an answer would reach it: this
            # worker was starting, or the open waited in the channel layer.
            logger.info("session %s: its open came too late; ignored", message["session_id"])
            return
        if message["session_id"] in self.sessions:
            return  # asked again (realtime.consumers): this worker holds it already
        limit = session_limit(self.capacity) if self.capacity else 1
        channels = max(1, int(message.get("channels") or 1))
        if len(self.sessions) + channels > limit:
            asked = await placement.pass_on(self.channel_layer, message, me=self.channel_name)
            if asked is not None:  # every live worker is full
                await self._send(reply, placement.refusal(limit, workers=asked))
            return
        # Several channels: a session each, the first under the asked id (each a stream
        # job, each counted against the cap); their events say which channel they are.
        for channel in range(channels):
            session = LiveSession(
                channel_session_id(message["session_id"], channel),
                reply,
                message["owner_id"],
                channel=channel if channels > 1 else None,
            )
            self.sessions[session.session_id] = session
        self.room_changed.set()
        await self._send(reply, {"type": "stream.opened", "worker_channel": self.channel_name})

    async def session_start(self, message: dict) -> None:
        session = self.sessions.get(message["session_id"])
        if session is None or session.stream is not None:
            return
        options = JobOptions.from_stored(message["options"], live=True)
        try:
            model = await self._loop_run(self._ensure_model)
            job, review = await self._loop_run(self._start_job, session, model, options)
        except Exception as exc:  # a missing model, a database outage: tell the client
            logger.exception("could not start session %s", session.session_id)
            await self._event(
                session,
                {
                    "type": "error",
                    "code": "start_failed",
                    "message": getattr(exc, "message", str(exc)),
                },
            )
            await self._close(session)
            return
        session.job_id = job.id
        session.options = options
        session.language = options.language
        session.decoder = FrameDecoder(options.encoding, options.sample_rate)
        session.review = review
        bias = glossary_bias(
            terms=review.terms,
            extra_hotwords=options.hotwords,
            count_tokens=token_counter(model),
            hotwords_per_window=bool(review.terms),
        )
        session.hotwords = bias.hotwords
        if review.terms:
            session.choice = HotwordChoice(
                terms=review.terms,
                extra_hotwords=options.hotwords,
                count_tokens=token_counter(model),
            )
        session.stream = live_stream(message, prompt=bias.initial_prompt or "")
        ready = {"type": "ready", "session_id": session.session_id, "job_id": str(job.id)}
        await self._event(session, {**ready, "model": model_served_name(model.name)})

    async def session_audio(self, message: dict) -> None:
        session = self.sessions.get(message["session_id"])
        if session is None or session.decoder is None or session.stop:
            return
        if session.backlog_s >= BACKLOG_MAX_S:
            chunk_s = session.decoder.duration_s(message["audio"])
            session.dropped_s += chunk_s
            await self._warn(
                session,
                "dropping_audio",
                f"Audio arrives faster than it can be transcribed: "
                f"{session.backlog_s:.0f} s are waiting, so frames are being "
                f"refused ({session.dropped_s:.1f} s dropped so far). Send in "
                "real time.",
                force=True,
            )
            return
        samples = session.decoder.decode(message["audio"])
        session.inbox.append(samples)
        session.inbox_samples += samples.shape[0]
        if session.backlog_s >= BACKLOG_WARN_S:
            await self._warn(
                session,
                "falling_behind",
                f"{session.backlog_s:.0f} s of audio are waiting to be "
                "transcribed; results will lag.",
            )
        self.wake.set()

    async def session_finalize(self, message: dict) -> None:
        session = self.sessions.get(message["session_id"])
        if session is not None:
            session.finalize = True
            self.wake.set()

    async def session_alive(self, message: dict) -> None:
        """The consumer's keep-alive: ``dispatch`` has noted that its session was heard."""

    async def worker_sweep(self, message: dict) -> None:
        """Stop the sessions whose client is gone, as their consumers would have.

        This worker's channel is read first in, first out, so every message sent to it
        before this one, which it sent itself, has been read: a session that sent nothing,
        not even its consumer's keep-alive, for CONSUMER_SILENCE_S before then has no
        consumer (however far behind this worker reads). Stopping keeps what was said.
        """
        cutoff = message["sent_at"] - CONSUMER_SILENCE_S
        for session in list(self.sessions.values()):
            if session.heard_at < cutoff and not session.stop:
                logger.warning(
                    "session %s: nothing from its client for %.0f s; stopping it",
                    session.session_id,
                    message["sent_at"] - session.heard_at,
                )
                await self.session_stop({"session_id": session.session_id})

    async def session_stop(self, message: dict) -> None:
        session = self.sessions.get(message["session_id"])
        if session is None:
            return
        if session.stream is None:  # opened, never started: nothing to keep
            self.sessions.pop(session.session_id, None)
            return
        session.stop = True
        self.wake.set()

    def _room(self) -> tuple[int, int] | None:
        """(free, cap) for this worker's advert; None until its model is warm."""
        capacity = self.capacity or _capacity
        if capacity is None:
            return None
        limit = session_limit(capacity)
        return max(0, limit - len(self.sessions)), limit

    # --- scheduling ---------------------------------------------------------------------

    def _start_background(self) -> None:
        """Start the scheduler and the keep-alive, or start them again after a failure."""
        if self.tasks and not any(task.done() for task in self.tasks):
            return
        for task in self.tasks:
            task.cancel()
        self.tasks = [
            asyncio.ensure_future(self._schedule()),
            asyncio.ensure_future(self._keepalive()),
        ]
        if placement.enabled():
            advert = placement.keep_advertised(self.channel_name, self._room, self.room_changed)
            self.tasks.append(asyncio.ensure_future(advert))
        for task in self.tasks:
            task.add_done_callback(self._on_task_done)

    def _on_task_done(self, task: asyncio.Task) -> None:
        """A background task ended: the worker can no longer serve its sessions."""
        if task.cancelled() and not any(t is task for t in self.tasks):
            return  # replaced on purpose
        reason = "cancelled" if task.cancelled() else repr(task.exception())
        logger.error("realtime worker: a background task ended (%s); ending every session", reason)
        for other in self.tasks:
            other.cancel()  # no more ticks: consumers must not think this worker is alive
        self.tasks = []
        asyncio.ensure_future(self._lose_all_sessions())

    async def _lose_all_sessions(self) -> None:
        sessions, self.sessions = list(self.sessions.values()), {}
        # Every client first: keeping the transcripts waits for the decode thread.
        for session in sessions:
            await self._send(session.reply_channel, {"type": "stream.lost"})
        for session in sessions:
            if session.job_id is not None:
                try:
                    await self._loop_run(
                        self._finish_job, session, "The realtime worker failed during the session."
                    )
                except Exception:
                    logger.exception("could not keep the transcript of %s", session.session_id)
        # Serve again, advertised again, after a pause (a failure that lasts is logged anew).
        await asyncio.sleep(TICK_S)
        self._start_background()

    async def _schedule(self) -> None:
        """Step every session that has work, all due sessions together, for ever."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            while await self._tick():
                pass

    async def _tick(self) -> bool:
        """One step for every due session; whether any decoded (more may be due)."""
        sessions, self.turn = in_turn(list(self.sessions.values()), self.turn)
        steps = due_steps(sessions)
        if not steps:
            await self._report_backlog()
            return False
        started = time.perf_counter()
        await self._loop_run(self._run_steps, steps)
        elapsed = time.perf_counter() - started
        for step in steps:
            step.session.decode_s += elapsed / len(steps)
            await self._deliver(step)
        await self._report_backlog()
        return any(step.result.decoded for step in steps)

    async def _report_backlog(self) -> None:
        """Tell batch workers on this device whether live decoding runs late: audio that
        arrived during the tick beyond one step. Renewed every late tick, cleared once."""
        if self.model is None:
            return
        behind = max((s.backlog_s for s in self.sessions.values()), default=0.0)
        backlog_s = backlog_report(behind, reported_late=self.reported_late)
        if backlog_s is None:
            return
        device = "cpu" if self.model.device == "cpu" else f"cuda:{self.model.device_index}"
        try:
            # A cache write (Redis, or a file) off the event loop, which never blocks.
            await asyncio.to_thread(realtime_backlog_report, device=device, backlog_s=backlog_s)
            self.reported_late = backlog_s > 0
        except Exception:  # a signal only: live decoding goes on without it
            logger.warning("could not report the realtime backlog", exc_info=True)

    async def _deliver(self, step: Step) -> None:
        """Send a step's results; end the session when it stops or failed."""
        session = step.session
        if step.error is not None:
            await self._event(
                session, {"type": "error", "code": "session_failed", "message": step.error}
            )
        for event in step_events(step):
            await self._event(session, event)
        if step.stopping or step.error is not None:
            self.sessions.pop(session.session_id, None)
            try:
                await self._loop_run(self._finish_job, session, step.error)
            except Exception as exc:
                logger.exception("could not store the transcript of %s", session.session_id)
                await self._event(
                    session,
                    {
                        "type": "error",
                        "code": "storage_failed",
                        "message": "The transcript could not be stored: "
                        f"{exc}. The finals sent so far are in the job.",
                    },
                )
            await self._event(session, {"type": "closed", "job_id": str(session.job_id)})

    # --- in the decode thread -----------------------------------------------------------

    def _run_steps(self, steps: list[Step]) -> None:
        """Decode every due session's buffer as one batch, then apply and store each."""
        max_batch = (
            self.capacity.max_batch(settings.SCRIBE_REALTIME_MAX_BATCH) if self.capacity else 1
        )
        decode_together(request_decodes(steps), self._decode_batch, max_batch=max_batch)
        for step in steps:
            if step.error is not None:
                continue
            try:
                self._apply_and_store(step)
            except Exception as exc:
                step.fail(exc)

    def _decode_batch(self, steps: list[Step]) -> None:
        assert self.model is not None
        requests = [step.buffer_request() for step in steps]
        decoded = decode_buffers(self.model, requests, beam_size=settings.SCRIBE_REALTIME_BEAM_SIZE)
        for step, result in zip(steps, decoded, strict=True):
            step.take(result)

    def _apply_and_store(self, step: Step) -> None:
        """Apply the decode to the session, then write its finals before anyone sees them."""
        session = step.session
        for final in step.apply():
            session.count_final(final)
            sent = services.stream_final_save(
                job_id=session.job_id, final=final, review=session.review
            )
            if sent is not None:
                step.finals.append(sent)

    def _start_job(self, session: LiveSession, model: LoadedModel, options: JobOptions):
        job = services.stream_job_create(owner_id=session.owner_id, options=options)
        job.run = _run_dict(model, options)
        job.save(update_fields=["run"])
        review = services.session_review(owner_id=session.owner_id, options=options)
        return job, review

    def _finish_job(self, session: LiveSession, error: str | None = None) -> None:
        assert self.model is not None and session.stream is not None
        duration = session.stream.audio_end_s
        metrics = Metrics.measured(
            duration_s=duration,
            processing_s=session.decode_s,
            speech_s=session.speech_s,
            confidences=session.confidences,
            windows=session.steps,
        )
        services.stream_job_finish(
            job_id=session.job_id,
            run=_run_dict(self.model, session.options),
            metrics=metrics,
            review=session.review,
            language=session.language or "",
            note=error or "",
        )

    def _ensure_model(self) -> LoadedModel:
        if self.model is None:
            self.model, self.capacity = warm_up()
        return self.model

    async def _loop_run(self, func, *args):
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, functools.partial(_in_unit_of_work, func, *args)
        )

    # --- keep-alive, warnings, sends ------------------------------------------------------

    async def _keepalive(self) -> None:
        last_heartbeat = 0.0
        while True:
            await asyncio.sleep(TICK_S)
            scribe_metrics.streams_observed(
                sessions=len(self.sessions),
                lag_s=max((s.backlog_s for s in self.sessions.values()), default=0.0),
            )
            for session in list(self.sessions.values()):
                await self._send(session.reply_channel, {"type": "stream.tick"})
            if self.sessions:
                await self._send(
                    self.channel_name, {"type": "worker.sweep", "sent_at": time.monotonic()}
                )
            if time.monotonic() - last_heartbeat >= HEARTBEAT_S:
                last_heartbeat = time.monotonic()
                ids = [s.job_id for s in self.sessions.values() if s.job_id]
                try:
                    cancelled = await database_sync_to_async(services.stream_jobs_heartbeat)(
                        job_ids=ids
                    )
                except Exception:  # the database is down: beat again next time
                    logger.exception("realtime heartbeat failed")
                    continue
                await self._end_cancelled(cancelled)

    async def _end_cancelled(self, job_ids: set) -> None:
        """End the sessions whose job's owner cancelled or erased it, as a stop would:
        what was finalised is kept (and erased after, for a DELETE)."""
        for session in list(self.sessions.values()):
            if session.job_id in job_ids and not session.stop:
                session.stop = True
                await self._warn(
                    session,
                    "cancelled",
                    "This session's job was cancelled through the API (POST …/cancel or "
                    "DELETE); it ends now.",
                    force=True,
                )
        self.wake.set()

    async def _warn(self, session: LiveSession, code: str, text: str, force: bool = False):
        now = time.monotonic()
        if force or now - session.warned_at >= 5.0:
            session.warned_at = now
            await self._event(session, {"type": "error", "code": code, "message": text})

    async def _event(self, session: LiveSession, event: dict) -> None:
        if session.channel is not None:
            event = {**event, "channel": session.channel}
        await self._send(session.reply_channel, {"type": "stream.event", "event": event})

    async def _send(self, channel: str, message: dict) -> None:
        """Send to one consumer; a consumer that does not read is its own problem."""
        try:
            await self.channel_layer.send(channel, message)
        except ChannelFull:
            logger.warning("dropped %s to %s: its channel is full", message["type"], channel)

    async def _close(self, session: LiveSession) -> None:
        self.sessions.pop(session.session_id, None)
        await self._event(session, {"type": "closed", "job_id": None})


def _in_unit_of_work(func, *args):
    """In the decode thread: database work gets a live connection and gives it back, so a
    database restart costs one reconnect and the thread holds none while it decodes."""
    with unit_of_work():
        return func(*args)


def _run_dict(model: LoadedModel, options: JobOptions) -> dict:
    return dataclasses.asdict(run_record(model, {**options.stored(live=True), "lane": "realtime"}))
