"""The WebSocket endpoint /v1/stream: authenticate, validate frames, forward.

No decoding happens here (Channels dispatches one message at a time per consumer): audio
goes through the channel layer to a realtime worker, and the worker's events come back
the same way and are passed to the client as they are.

Close codes: 4401 no valid key, 4403 key without the ``stream`` scope, 4429 the worker's
session cap is reached, 4503 no realtime worker answered, 4001 the key was revoked during
the session, 4500 the worker stopped during the session. A refused handshake is accepted
first, then answered with an ``error`` event saying what to do and closed with its code:
a close before accepting reaches a client only as ``HTTP 403``.

``stop`` before a session has started (none was sent, or every ``start`` was refused) ends
the connection as a finished session does: a ``closed`` event with ``job_id: null``, then
close code 1000. There is nothing to keep, and a client that gives up after a refused
``start`` is not left waiting on an open socket.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts.services import key_group
from accounts.websocket import key_still_valid
from glossary.models import Glossary
from realtime.audio import ENCODINGS, SAMPLE_RATES
from realtime.services import LIVE_MODE, LIVE_MODES
from realtime.worker import ensure_local_worker
from transcription.engine import LANGUAGES
from transcription.engine.audio import SAMPLE_RATE_HZ

OPEN_TIMEOUT_S = 10.0
WORKER_SILENCE_S = 10.0  # no tick from the worker for this long: it is gone
KEY_RECHECK_S = 30.0
MAX_FRAME_BYTES = 1024 * 1024
SUBPROTOCOL = "scribe"
START_OPTIONS = {
    "language",
    "hotwords",
    "glossary_id",
    "word_timestamps",
    "sample_rate",
    "encoding",
    "post_correction",
}


def validate_start(options: object) -> tuple[dict, str | None]:
    """Return the start options with defaults, or one message naming every problem."""
    if not isinstance(options, dict):
        return {}, "options must be a JSON object"
    problems = []
    unknown = sorted(set(options) - START_OPTIONS)
    if unknown:
        problems.append(f"unknown options {unknown}; known: {sorted(START_OPTIONS)}")
    language = options.get("language") or ""
    if not isinstance(language, str):
        problems.append("language must be a language code such as 'en', or 'auto'")
        language = ""
    clean = {
        "language": language.lower() or None,
        "hotwords": options.get("hotwords") or [],
        "word_timestamps": bool(options.get("word_timestamps", True)),
        "sample_rate": options.get("sample_rate", SAMPLE_RATE_HZ),
        "encoding": options.get("encoding", "pcm_s16le"),
    }
    if clean["language"] not in (None, "auto") and clean["language"] not in LANGUAGES:
        problems.append(
            f"language {clean['language']!r} is not one Whisper knows (ko, en, …, or auto)"
        )
    if clean["language"] == "auto":
        clean["language"] = None
    if clean["sample_rate"] not in SAMPLE_RATES:
        problems.append(f"sample_rate must be one of {list(SAMPLE_RATES)}")
    if clean["encoding"] not in ENCODINGS:
        problems.append(f"encoding must be one of {sorted(ENCODINGS)}")
    if not isinstance(clean["hotwords"], list) or not all(
        isinstance(w, str) for w in clean["hotwords"]
    ):
        problems.append("hotwords must be a list of strings")
    glossary_id = options.get("glossary_id")
    if glossary_id is not None and (
        not isinstance(glossary_id, int) or isinstance(glossary_id, bool)
    ):
        problems.append("glossary_id must be the id of one of your glossaries")
    clean["glossary_id"] = glossary_id
    post_correction = options.get("post_correction", {"mode": LIVE_MODE})
    # As for jobs, a mode object without a mode asks for none.
    mode = post_correction.get("mode", "none") if isinstance(post_correction, dict) else None
    if mode == "llm":
        problems.append(
            "post_correction mode 'llm' is not offered on live sessions: it would hold finals "
            f"back until a language model answers; use one of {list(LIVE_MODES)}"
        )
    elif mode not in LIVE_MODES or set(post_correction) - {"mode"}:
        problems.append(f'post_correction must be {{"mode": one of {list(LIVE_MODES)}}}')
    clean["post_correction"] = {"mode": mode}
    if problems:
        return {}, "; ".join(problems)
    return clean, None


class StreamConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        key = self.scope.get("api_key")
        if key is None:
            await self._refuse(
                4401,
                "unauthorized",
                "No valid API key: send 'Authorization: Bearer <key>' (or X-API-Key, a "
                "'key.<key>' subprotocol or ?api_key=) with a key that is not revoked.",
            )
            return
        if not key.has_scope("stream"):
            await self._refuse(
                4403,
                "forbidden",
                "This API key lacks the 'stream' scope: use a key created with it.",
            )
            return
        if settings.SCRIBE_REALTIME_IN_PROCESS:
            ensure_local_worker(self.channel_layer)
        self.key = key
        self.session_id = uuid.uuid4().hex
        self.worker_channel: str | None = None
        self.started = False
        self.closing = False
        self.sample_width = 2
        # Ask a worker for a session; its answer (stream.opened / stream.refused) accepts or
        # refuses the handshake, which stays pending until then.
        self.accepted = False
        await self.channel_layer.send(
            settings.SCRIBE_REALTIME_CHANNEL,
            {
                "type": "session.open",
                "session_id": self.session_id,
                "reply_channel": self.channel_name,
                "owner_id": key.owner_id,
            },
        )
        self.open_timer = asyncio.ensure_future(self._refuse_if_unanswered())

    async def _refuse_if_unanswered(self) -> None:
        await asyncio.sleep(OPEN_TIMEOUT_S)
        if not self.accepted:
            await self._refuse(
                4503,
                "no_worker",
                f"No realtime worker answered within {OPEN_TIMEOUT_S:.0f} s: start one "
                "(manage.py runworker realtime) or retry later.",
            )

    async def stream_opened(self, message: dict) -> None:
        self.open_timer.cancel()
        self.worker_channel = message["worker_channel"]
        await self.channel_layer.group_add(key_group(self.key), self.channel_name)
        offered = self.scope.get("subprotocols") or []
        await self.accept(SUBPROTOCOL if SUBPROTOCOL in offered else None)
        self.accepted = True
        self.last_worker_message = time.monotonic()
        self.watchdog = asyncio.ensure_future(self._watch())

    async def stream_refused(self, message: dict) -> None:
        self.open_timer.cancel()
        await self._refuse(
            4429,
            "session_limit",
            message.get("message") or "The realtime worker is full: retry later.",
        )

    async def _refuse(self, code: int, error: str, text: str) -> None:
        """Accept, say why, then close with ``code``: a close before accepting reaches the
        client only as an HTTP 403, without the code or the advice."""
        offered = self.scope.get("subprotocols") or []
        await self.accept(SUBPROTOCOL if SUBPROTOCOL in offered else None)
        await self._error(error, text)
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        for task in (getattr(self, "watchdog", None), getattr(self, "open_timer", None)):
            if task is not None:
                task.cancel()
        if getattr(self, "key", None) is not None:
            await self.channel_layer.group_discard(key_group(self.key), self.channel_name)
        if getattr(self, "worker_channel", None) and not self.closing:
            await self._to_worker({"type": "session.stop"})  # keep what was said so far

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        if bytes_data is not None:
            await self._audio(bytes_data)
            return
        try:
            message = json.loads(text_data or "")
        except json.JSONDecodeError:
            await self._error("bad_message", "Text frames must be JSON: start, finalize or stop.")
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "start":
            await self._start(message.get("options", {}))
        elif kind == "finalize" and self.started:
            await self._to_worker({"type": "session.finalize"})
        elif kind == "stop" and self.started:
            await self._to_worker({"type": "session.stop"})
        elif kind == "stop":
            # Nothing started, nothing to keep: end as a finished session ends.
            await self.send(text_data=json.dumps({"type": "closed", "job_id": None}))
            await self.close(code=1000)
        elif kind == "finalize":
            await self._error("not_started", 'Send {"type": "start"} first.')
        else:
            await self._error(
                "bad_message",
                f"Unknown message type {kind!r}: use start, "
                "finalize or stop; audio goes in binary frames.",
            )

    async def _start(self, options: object) -> None:
        if self.started:
            await self._error("already_started", "This session has started already.")
            return
        clean, problem = validate_start(options)
        if (
            not problem
            and clean["glossary_id"] is not None
            and not await database_sync_to_async(
                Glossary.objects.usable_by(self.key.owner_id).filter(pk=clean["glossary_id"]).exists
            )()
        ):
            problem = "no glossary of yours has this glossary_id"
        if problem:
            await self._error("bad_options", problem)
            return
        self.started = True
        self.sample_width = ENCODINGS[clean["encoding"]][0].itemsize
        await self._to_worker({"type": "session.start", "options": clean})

    async def _audio(self, frame: bytes) -> None:
        if not self.started:
            await self._error("not_started", 'Send {"type": "start"} before audio frames.')
        elif len(frame) % self.sample_width:
            await self._error(
                "bad_frame",
                f"A frame of {len(frame)} bytes is not a whole number "
                f"of {self.sample_width}-byte samples; it was dropped.",
            )
        elif len(frame) > MAX_FRAME_BYTES:
            await self._error(
                "bad_frame",
                f"Frames are limited to {MAX_FRAME_BYTES} bytes; "
                "send smaller ones. This one was dropped.",
            )
        else:
            await self._to_worker({"type": "session.audio", "audio": frame})

    async def _to_worker(self, message: dict) -> None:
        message["session_id"] = self.session_id
        try:
            await self.channel_layer.send(self.worker_channel, message)
        except ChannelFull:
            await self._error(
                "falling_behind",
                "The realtime worker's queue is full; this "
                "message was dropped. Send audio in real time.",
            )

    # --- from the worker -------------------------------------------------------------------

    async def stream_event(self, message: dict) -> None:
        self.last_worker_message = time.monotonic()
        event = message["event"]
        await self.send(text_data=json.dumps(event, ensure_ascii=False))
        if event.get("type") == "closed":
            self.closing = True
            await self.close(code=1000)

    async def stream_tick(self, message: dict) -> None:
        self.last_worker_message = time.monotonic()

    async def stream_lost(self, message: dict) -> None:
        """The worker's scheduler died: it says so at once rather than going silent."""
        await self._end(
            4500,
            "worker_lost",
            "The realtime worker failed; the transcript up to the last final is kept in the job.",
        )

    async def key_revoked(self, message: dict) -> None:
        await self._end(4001, "key_revoked", "The API key of this session was revoked.")

    async def _watch(self) -> None:
        last_key_check = time.monotonic()
        while True:
            await asyncio.sleep(1.0)
            now = time.monotonic()
            if now - self.last_worker_message > WORKER_SILENCE_S:
                await self._end(
                    4500,
                    "worker_lost",
                    "The realtime worker stopped; the "
                    "transcript up to the last final is kept in the job.",
                )
                return
            if now - last_key_check > KEY_RECHECK_S:
                last_key_check = now
                if not await database_sync_to_async(key_still_valid)(self.key):
                    await self._end(
                        4001, "key_revoked", "The API key of this session is no longer valid."
                    )
                    return

    async def _end(self, code: int, error: str, text: str) -> None:
        self.closing = code == 4500  # nothing to tell a dead worker
        await self._error(error, text)
        await self.close(code=code)

    async def _error(self, code: str, text: str) -> None:
        await self.send(text_data=json.dumps({"type": "error", "code": code, "message": text}))
