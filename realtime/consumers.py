"""The WebSocket endpoint /v1/stream: authenticate, validate frames, forward.

No decoding happens here (Channels dispatches one message at a time per consumer): audio
goes through the channel layer to a realtime worker, and the worker's events come back
the same way and are passed to the client as they are.

Close codes: 4401 no valid key, 4403 key without the ``stream`` scope, 4429 every
realtime worker's session cap is reached, 4503 no realtime worker answered, 4001 the key
was revoked during the session, 4500 the worker stopped during the session, 4413 a frame over
``MAX_FRAME_BYTES`` (daphne's own ceiling is above it: ``scribe/web.py``). A refused
handshake is accepted first, then answered with an ``error`` event saying what to do and
closed with its code: a close before accepting reaches a client only as ``HTTP 403``.

A channel layer that fails under a connection (Redis restarting) ends it as a lost worker
does, saying so: 4503 ``no_worker`` at the handshake (not an HTTP 500), 4500
``worker_lost`` during a session (not a bare 1011 close). The client starts a new session;
the finals sent so far are kept in the job, and the worker stops the session it can no
longer hear from (``realtime.worker``).

With several realtime workers (``realtime.placement``) the session is asked of the
advertised worker with the most room, and asked again of another if that worker's advert
vanishes before it answers; a session whose worker's advert vanishes ends with 4500.

``stop`` before a session has started (none was sent, or every ``start`` was refused) ends
the connection as a finished session does: a ``closed`` event with ``job_id: null``, then
close code 1000. There is nothing to keep, and a client that gives up after a refused
``start`` is not left waiting on an open socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid

from channels.db import database_sync_to_async
from channels.exceptions import ChannelFull
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from redis.exceptions import RedisError
from rest_framework.exceptions import ValidationError

from accounts.services import key_group
from accounts.websocket import key_still_valid
from realtime import placement
from realtime.audio import ENCODINGS
from realtime.channel_worker import ensure_local_worker
from realtime.keywords import LiveKeywords
from realtime.scheduler import channel_session_id
from realtime.worker import OPEN_TIMEOUT_S, TICK_S
from scribe.errors import problems_text
from transcription.serializers import options_parse

logger = logging.getLogger(__name__)

WORKER_SILENCE_S = 10.0  # no tick from the worker for this long: it is gone
# How often a consumer looks at its worker: its advert (gone: the worker died, placement.
# ADVERT_TTL_S after its last renewal), its ticks, its keep-alive, the key.
WATCH_S = 0.25
# What a channel layer raises when it cannot reach its server (channels_redis: Redis).
LAYER_ERRORS = (RedisError, OSError)
KEY_RECHECK_S = 30.0
MAX_FRAME_BYTES = 1024 * 1024
# A frame over MAX_FRAME_BYTES: HTTP's 413 in the 4xxx range, as 4401, 4403 and 4429 are.
# WebSocket's own 1009 (message too big) cannot be sent by an application under daphne:
# autobahn's sendClose takes only 1000 and 3000-4999.
FRAME_TOO_LARGE_CLOSE = 4413
SUBPROTOCOL = "scribe"


class StreamConsumer(AsyncWebsocketConsumer):
    keywords: LiveKeywords | None = None  # with the start option keywords: true
    subprotocol = SUBPROTOCOL  # chosen when the client offers it
    # Channels transcribed apart, each a session of the worker (and a stream job) under
    # ``channel_session_id``; their events name their channel. /v1/stream has one.
    channels = 1

    async def __call__(self, scope, receive, send) -> None:
        """Serve one connection; if the channel layer fails under it, tell the client."""
        state = {"accepted": False, "ended": False}

        async def client_receive() -> dict:
            message = await receive()
            state["ended"] |= message["type"] == "websocket.disconnect"
            return message

        async def client_send(message: dict) -> None:
            state["accepted"] |= message["type"] == "websocket.accept"
            state["ended"] |= message["type"] == "websocket.close"
            await send(message)

        try:
            await super().__call__(scope, client_receive, client_send)
        except LAYER_ERRORS as exc:
            logger.warning("the channel layer failed under a stream connection: %s", exc)
            if state["ended"]:
                return  # the client has gone, or was told already
            # The client may go meanwhile: nothing more to do then.
            with contextlib.suppress(Exception):
                if state["accepted"]:
                    await self._end(
                        4500,
                        "worker_lost",
                        "The realtime worker cannot be reached (the channel layer is "
                        "unavailable); the transcript up to the last final is kept in the "
                        "job. Start a new session.",
                    )
                else:
                    await self._refuse(
                        4503,
                        "no_worker",
                        "No realtime worker can be reached (the channel layer is "
                        "unavailable): retry in a few seconds.",
                    )
        finally:
            # However the connection ended: its timers must not outlive it (a keep-alive
            # from a dead connection would hold its session in the worker).
            self._cancel_timers()

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
        self.accepted = self.refused = False
        self.open_sent_at = time.time()  # a worker reading it after OPEN_ANSWER_S ignores it
        await self._ask_for_session(tried=[])
        self.open_timer = asyncio.ensure_future(self._refuse_if_unanswered())

    async def _ask_for_session(self, *, tried: list[str]) -> None:
        """Send ``session.open`` to the advertised worker with the most room not in
        ``tried``, else to the shared channel (no worker advertised: any worker takes it)."""
        workers = placement.ranked(await placement.adverts() or [], exclude=tried)
        self.asked = workers[0].channel if workers else None
        await self.channel_layer.send(
            self.asked or settings.SCRIBE_REALTIME_CHANNEL,
            {
                "type": "session.open",
                "session_id": self.session_id,
                "reply_channel": self.channel_name,
                "owner_id": self.key.owner_id,
                "sent_at": self.open_sent_at,
                "tried": tried,
                "channels": self.channels,
            },
        )

    async def _advertised(self, channel: str | None) -> bool | None:
        """Whether the worker reading ``channel`` is advertised now; None: unknown (no
        adverts in this deployment, or Redis cannot be read now)."""
        workers = await placement.adverts()
        if workers is None or channel is None:
            return None
        return any(worker.channel == channel for worker in workers)

    async def _refuse_if_unanswered(self) -> None:
        """4503 if no worker answers within OPEN_TIMEOUT_S. A worker asked that is no
        longer advertised died before answering: ask the next one."""
        deadline = time.monotonic() + OPEN_TIMEOUT_S
        tried: list[str] = []
        while time.monotonic() < deadline:
            await asyncio.sleep(min(WATCH_S, max(0.0, deadline - time.monotonic())))
            if self.asked is not None and await self._advertised(self.asked) is False:
                tried.append(self.asked)
                await self._ask_for_session(tried=tried)
        if not self.accepted:
            await self._refuse(
                4503,
                "no_worker",
                f"No realtime worker answered within {OPEN_TIMEOUT_S:.0f} s: start one "
                "(manage.py runworker realtime) or retry later.",
            )

    async def stream_opened(self, message: dict) -> None:
        if self.accepted:
            if message["worker_channel"] != self.worker_channel:
                # Asked again while the first worker only seemed dead, both took it: the
                # second holds it for nobody.
                for session_id in self._session_ids():
                    await self.channel_layer.send(
                        message["worker_channel"],
                        {"type": "session.stop", "session_id": session_id},
                    )
            return
        self.open_timer.cancel()
        self.worker_channel = message["worker_channel"]
        await self.channel_layer.group_add(key_group(self.key), self.channel_name)
        await self._accept()
        self.accepted = True
        self.last_worker_message = time.monotonic()
        self.watchdog = asyncio.ensure_future(self._watch())

    async def stream_refused(self, message: dict) -> None:
        if self.accepted or self.refused:
            return  # asked again (its first worker seemed dead): answered already
        self.refused = True
        self.open_timer.cancel()
        await self._refuse(
            4429,
            "session_limit",
            message.get("message") or "The realtime worker is full: retry later.",
        )

    async def _refuse(self, code: int, error: str, text: str) -> None:
        """Accept, say why, then close with ``code``: a close before accepting reaches the
        client only as an HTTP 403, without the code or the advice."""
        await self._accept()
        await self._error(error, text)
        await self.close(code=code)

    async def _accept(self) -> None:
        offered = self.scope.get("subprotocols") or []
        await self.accept(self.subprotocol if self.subprotocol in offered else None)

    def _cancel_timers(self) -> None:
        for task in (getattr(self, "watchdog", None), getattr(self, "open_timer", None)):
            if task is not None:
                task.cancel()

    async def disconnect(self, code: int) -> None:
        self._cancel_timers()
        if self.keywords is not None:
            self.keywords.stop()
        if getattr(self, "key", None) is not None:
            await self.channel_layer.group_discard(key_group(self.key), self.channel_name)
        if getattr(self, "worker_channel", None) and not self.closing:
            await self._to_worker({"type": "session.stop"})  # keep what was said so far

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        size = len(bytes_data) if bytes_data is not None else len((text_data or "").encode())
        if size > MAX_FRAME_BYTES:
            await self._frame_too_large(size)
            return
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
        try:
            # The job options' schema, live lane (it reads the database for glossary_id).
            parsed = await database_sync_to_async(options_parse)(
                options, owner=self.key.owner_id, lane="live"
            )
        except ValidationError as exc:
            await self._error("bad_options", problems_text(exc.detail))
            return
        self.started = True
        self.sample_width = ENCODINGS[parsed.encoding][0].itemsize
        if parsed.keywords:
            self.keywords = LiveKeywords(
                owner_id=self.key.owner_id, glossary_id=parsed.glossary_id, send=self._event
            )
        await self._to_worker({"type": "session.start", "options": parsed.stored(live=True)})

    async def _audio(self, frame: bytes) -> None:
        if not self.started:
            await self._error("not_started", 'Send {"type": "start"} before audio frames.')
        elif len(frame) % self.sample_width:
            await self._error(
                "bad_frame",
                f"A frame of {len(frame)} bytes is not a whole number "
                f"of {self.sample_width}-byte samples; it was dropped.",
            )
        else:
            await self._to_worker({"type": "session.audio", "audio": frame})

    async def _frame_too_large(self, size: int) -> None:
        """Say what the limit is, then close: a client sending frames this large would lose
        each one, so the session ends (keeping what was said so far) rather than drift."""
        await self._error(
            "frame_too_large",
            f"A frame of {size} bytes is over the limit: the largest frame accepted is "
            f"{MAX_FRAME_BYTES} bytes. Send audio in smaller frames (100 ms is 3200 bytes "
            "of 16 kHz pcm_s16le).",
        )
        await self.close(code=FRAME_TOO_LARGE_CLOSE)

    def _session_ids(self) -> list[str]:
        """The worker's ids of this connection's sessions, one per channel."""
        return [channel_session_id(self.session_id, c) for c in range(self.channels)]

    async def _to_worker(self, message: dict, *, channel: int | None = None) -> None:
        """Send ``message`` to the session of one ``channel``, or (None) of each."""
        ids = self._session_ids()
        for session_id in ids if channel is None else [ids[channel]]:
            try:
                await self.channel_layer.send(
                    self.worker_channel, {**message, "session_id": session_id}
                )
            except ChannelFull:
                await self._error(
                    "falling_behind",
                    "The realtime worker's queue is full; this "
                    "message was dropped. Send audio in real time.",
                )
                return

    # --- from the worker -------------------------------------------------------------------

    async def stream_event(self, message: dict) -> None:
        self.last_worker_message = time.monotonic()
        event = message["event"]
        await self._event(event)
        if self.keywords is not None:
            self._keywords_see(self.keywords, event)
        if event.get("type") == "closed":
            self.closing = True
            await self.close(code=1000)

    async def _event(self, event: dict) -> None:
        await self.send(text_data=json.dumps(event, ensure_ascii=False))

    @staticmethod
    def _keywords_see(keywords: LiveKeywords, event: dict) -> None:
        """Live keywords follow the finals the client is sent (realtime/keywords.py)."""
        if event.get("type") == "ready":
            keywords.job_id = event.get("job_id")
        elif event.get("type") == "final":
            keywords.final(event["segment"])
        elif event.get("type") == "closed":
            keywords.stop()

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
        last_key_check = last_alive = time.monotonic()
        seen = False  # its advert was read: from then on, its absence means the worker died
        while True:
            await asyncio.sleep(WATCH_S)
            now = time.monotonic()
            if now - last_alive >= TICK_S:
                last_alive = now
                # The worker stops a session it does not hear from (realtime.worker). A
                # full queue means the worker is behind, not that this client has gone.
                with contextlib.suppress(ChannelFull):
                    for session_id in self._session_ids():
                        await self.channel_layer.send(
                            self.worker_channel,
                            {"type": "session.alive", "session_id": session_id},
                        )
            advertised = await self._advertised(self.worker_channel)
            seen |= advertised is True
            gone = seen and advertised is False
            if gone or now - self.last_worker_message > WORKER_SILENCE_S:
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
