"""The realtime worker: owns the realtime model and every live session of its process.

Run out of process as ``manage.py runworker realtime`` (one per GPU), or, with the
in-memory channel layer, inside the web process (``ensure_local_worker``). Consumers talk
to it through the channel layer; it never blocks its event loop: each decode step runs in
a one-thread executor (one model, one decode at a time), and sessions take turns, so one
busy session cannot starve the others.

Messages in (from consumers): ``session.open`` on the shared ``realtime`` channel, then
``session.start``, ``session.audio``, ``session.finalize``, ``session.stop`` on this
worker's own channel. Messages out (to a consumer's channel): ``stream.opened`` or
``stream.refused``, then ``stream.event`` (the client's JSON) and ``stream.tick``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from django.conf import settings

from glossary.models import Glossary
from glossary.normalize import RuleSpec, TermSpec, apply_glossary, apply_rules
from glossary.services import glossary_bias, rule_specs, term_specs
from realtime import services
from realtime.audio import FrameDecoder
from realtime.session import StepResult, StreamingSession, TimedWord
from scribe.db import unit_of_work
from transcription.engine import (
    LoadedModel,
    decode_buffer,
    run_record,
    speech_regions,
    token_counter,
)
from transcription.services import device_plan_build, lane_model_name, model_load

logger = logging.getLogger(__name__)

TICK_S = 2.0  # keep-alive to consumers: silence from a worker means it is gone
HEARTBEAT_S = 5.0
BACKLOG_WARN_S = 10.0  # audio waiting to be decoded before the client is told
BACKLOG_MAX_S = 60.0  # past this, new frames are refused (and the client told so)


@dataclass
class LiveSession:
    session_id: str
    reply_channel: str
    owner_id: int
    job_id: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    stream: StreamingSession | None = None
    decoder: FrameDecoder | None = None
    inbox: list[np.ndarray] = field(default_factory=list)
    inbox_samples: int = 0
    finalize: bool = False
    stop: bool = False
    language: str | None = None
    decode_s: float = 0.0
    steps: int = 0
    dropped_s: float = 0.0
    warned_at: float = 0.0
    confidences: list[float] = field(default_factory=list)
    hotwords: str | None = None
    terms: list[TermSpec] = field(default_factory=list)
    rules: list[RuleSpec] = field(default_factory=list)

    @property
    def backlog_s(self) -> float:
        return self.inbox_samples / 16000


class RealtimeWorker(AsyncConsumer):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: dict[str, LiveSession] = {}
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode")
        self.model: LoadedModel | None = None
        self.wake = asyncio.Event()
        self.tasks: list[asyncio.Task] = []
        self.turn = 0

    # --- messages -----------------------------------------------------------------------

    async def session_open(self, message: dict) -> None:
        self._start_background()
        reply = message["reply_channel"]
        limit = settings.SCRIBE_REALTIME_MAX_SESSIONS
        if len(self.sessions) >= limit:
            await self.channel_layer.send(
                reply,
                {
                    "type": "stream.refused",
                    "code": "session_limit",
                    "message": f"This realtime worker already serves {limit} sessions "
                    "(SCRIBE_REALTIME_MAX_SESSIONS). Retry later or add a worker.",
                },
            )
            return
        session = LiveSession(message["session_id"], reply, message["owner_id"])
        self.sessions[session.session_id] = session
        await self.channel_layer.send(
            reply, {"type": "stream.opened", "worker_channel": self.channel_name}
        )

    async def session_start(self, message: dict) -> None:
        session = self.sessions.get(message["session_id"])
        if session is None or session.stream is not None:
            return
        options = message["options"]
        try:
            model = await self._loop_run(self._ensure_model)
            job = await database_sync_to_async(services.stream_job_create)(
                owner_id=session.owner_id, options=options
            )
            await database_sync_to_async(_store_run)(job, model, options)
            terms, rules = await database_sync_to_async(_glossary_of)(options.get("glossary_id"))
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
        session.language = options.get("language") or None
        session.decoder = FrameDecoder(options["encoding"], options["sample_rate"])
        session.terms, session.rules = terms, rules
        bias = glossary_bias(
            terms=terms,
            extra_hotwords=options.get("hotwords") or [],
            count_tokens=token_counter(model),
        )
        session.hotwords = bias.hotwords
        session.stream = StreamingSession(
            functools.partial(self._transcribe, session),
            speech_regions,
            initial_prompt=bias.initial_prompt or "",
        )
        await self._event(
            session, {"type": "ready", "session_id": session.session_id, "job_id": str(job.id)}
        )

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

    async def session_stop(self, message: dict) -> None:
        session = self.sessions.get(message["session_id"])
        if session is None:
            return
        if session.stream is None:  # opened, never started: nothing to keep
            self.sessions.pop(session.session_id, None)
            return
        session.stop = True
        self.wake.set()

    # --- scheduling ---------------------------------------------------------------------

    def _start_background(self) -> None:
        if not self.tasks:
            self.tasks = [
                asyncio.ensure_future(self._schedule()),
                asyncio.ensure_future(self._keepalive()),
            ]

    async def _schedule(self) -> None:
        """Give each session with work one decode step in turn, for ever."""
        while True:
            await self.wake.wait()
            self.wake.clear()
            busy = True
            while busy:
                busy = False
                for session in self._in_turn():
                    if session.stream is None:
                        continue
                    if session.inbox or session.stream.ready or session.finalize or session.stop:
                        busy = await self._step(session) or busy

    def _in_turn(self) -> list[LiveSession]:
        sessions = list(self.sessions.values())
        self.turn = (self.turn + 1) % max(1, len(sessions))
        return sessions[self.turn :] + sessions[: self.turn]

    async def _step(self, session: LiveSession) -> bool:
        stream = session.stream
        assert stream is not None
        for samples in session.inbox:
            stream.insert_audio(samples)
        session.inbox, session.inbox_samples = [], 0
        stopping = session.stop  # read before the await: a stop arriving meanwhile waits
        finishing = stopping or session.finalize
        if not finishing and not stream.ready:
            return False
        session.finalize = False
        started = time.perf_counter()
        try:
            result, finals = await self._loop_run(self._decode_and_store, session, finishing)
        except Exception as exc:
            logger.exception("session %s failed", session.session_id)
            await self._event(
                session,
                {
                    "type": "error",
                    "code": "decode_failed",
                    "message": f"Transcription failed: {exc}",
                },
            )
            session.stop = stopping = True
            result, finals = StepResult(), []
        session.decode_s += time.perf_counter() - started
        for final in finals:
            await self._event(session, {"type": "final", "segment": final})
        if result.partial is not None:
            p = result.partial
            await self._event(
                session, {"type": "partial", "text": p.text, "start": p.start, "end": p.end}
            )
        if stopping:
            await self._loop_run(self._finish_job, session)
            await self._event(session, {"type": "closed", "job_id": str(session.job_id)})
            self.sessions.pop(session.session_id, None)
        return result.decoded or session.stop

    def _decode_and_store(self, session: LiveSession, finishing: bool):
        """In the decode thread: one step, then its finals written before anyone sees them."""
        assert session.stream is not None
        result = session.stream.finish() if finishing else session.stream.process()
        session.steps += result.decoded
        finals = []
        for segment in result.finals:
            session.confidences.append(segment.confidence)
            if session.terms or session.rules:
                corrected = apply_rules(apply_glossary(segment.text, session.terms), session.rules)
                segment = dataclasses.replace(segment, text=corrected)
            finals.append(services.stream_final_save(job_id=session.job_id, segment=segment))
        return result, finals

    def _transcribe(self, session: LiveSession, audio: np.ndarray, prompt: str):
        assert self.model is not None
        decoded = decode_buffer(
            self.model,
            audio,
            prompt=prompt,
            language=session.language,
            hotwords=session.hotwords,
            beam_size=settings.SCRIBE_REALTIME_BEAM_SIZE,
        )
        if session.language is None and decoded.words:
            session.language = decoded.language  # detected once, then kept
        return [TimedWord(w.start, w.end, w.text, w.probability) for w in decoded.words]

    def _finish_job(self, session: LiveSession) -> None:
        assert self.model is not None and session.stream is not None
        duration = session.stream.audio_end_s
        metrics = {
            "audio_duration_s": round(duration, 3),
            "processing_time_s": round(session.decode_s, 3),
            "real_time_factor": round(session.decode_s / duration, 4) if duration else 0.0,
            "speech_duration_s": 0.0,
            "vad_speech_coverage": None,
            "mean_confidence": round(float(np.mean(session.confidences)), 4)
            if session.confidences
            else None,
            "windows": session.steps,
        }
        run = _run_dict(self.model, session.options)
        services.stream_job_finish(
            job_id=session.job_id, run=run, metrics=metrics, language=session.language or ""
        )

    def _ensure_model(self) -> LoadedModel:
        if self.model is None:
            name = lane_model_name("realtime")
            self.model = model_load(model=name, plan=device_plan_build(model=name))
        return self.model

    async def _loop_run(self, func, *args):
        return await asyncio.get_running_loop().run_in_executor(
            self.executor, functools.partial(_in_unit_of_work, func, *args)
        )

    # --- keep-alive, warnings -------------------------------------------------------------

    async def _keepalive(self) -> None:
        last_heartbeat = 0.0
        while True:
            await asyncio.sleep(TICK_S)
            for session in list(self.sessions.values()):
                await self.channel_layer.send(session.reply_channel, {"type": "stream.tick"})
            if time.monotonic() - last_heartbeat >= HEARTBEAT_S:
                last_heartbeat = time.monotonic()
                ids = [s.job_id for s in self.sessions.values() if s.job_id]
                await database_sync_to_async(services.stream_jobs_heartbeat)(job_ids=ids)

    async def _warn(self, session: LiveSession, code: str, text: str, force: bool = False):
        now = time.monotonic()
        if force or now - session.warned_at >= 5.0:
            session.warned_at = now
            await self._event(session, {"type": "error", "code": code, "message": text})

    async def _event(self, session: LiveSession, event: dict) -> None:
        await self.channel_layer.send(
            session.reply_channel, {"type": "stream.event", "event": event}
        )

    async def _close(self, session: LiveSession) -> None:
        self.sessions.pop(session.session_id, None)
        await self._event(session, {"type": "closed", "job_id": None})


def _in_unit_of_work(func, *args):
    """In the decode thread: database work gets a live connection and gives it back, so a
    database restart costs one reconnect and the thread holds none while it decodes."""
    with unit_of_work():
        return func(*args)


def _glossary_of(glossary_id: int | None) -> tuple[list[TermSpec], list[RuleSpec]]:
    """Terms and enabled rules of a session's glossary (ownership was checked on start)."""
    glossary = Glossary.objects.filter(pk=glossary_id).first() if glossary_id else None
    return term_specs(glossary), rule_specs(glossary)


def _run_dict(model: LoadedModel, options: dict) -> dict:
    return dataclasses.asdict(run_record(model, {**options, "lane": "realtime"}))


def _store_run(job, model: LoadedModel, options: dict) -> None:
    job.run = _run_dict(model, options)
    job.save(update_fields=["run"])


_local_workers: dict[int, asyncio.Task] = {}


def ensure_local_worker(channel_layer) -> None:
    """With the in-memory layer, run the worker inside this (web) process, once per loop."""
    from channels.routing import ChannelNameRouter
    from channels.worker import Worker

    loop = asyncio.get_running_loop()
    task = _local_workers.get(id(loop))
    if task is not None and not task.done():
        return
    app = ChannelNameRouter({settings.SCRIBE_REALTIME_CHANNEL: RealtimeWorker.as_asgi()})
    worker = Worker(app, [settings.SCRIBE_REALTIME_CHANNEL], channel_layer)
    _local_workers[id(loop)] = asyncio.ensure_future(worker.handle())
