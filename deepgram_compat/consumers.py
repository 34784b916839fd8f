"""The WebSocket endpoint /v1/listen: Deepgram's live protocol on scribe's live lane.

A protocol adapter over ``realtime.consumers.StreamConsumer``: the same realtime worker,
session, placement, keep-alive and stream job as ``/v1/stream``; only the words on the
wire differ (``deepgram_compat.live`` translates them). The session starts at the handshake, from
the query (Deepgram has no start message).

- Auth: ``Authorization: Token <key>`` or ``Bearer <key>``; browsers offer the
  subprotocols ``token`` and ``<key>`` (``accounts.websocket``). No valid key, or one
  without the ``stream`` scope: the handshake is refused, which daphne answers with HTTP
  403 (it cannot send 401 for a WebSocket); Deepgram's SDK raises its ``ApiError``.
- A query scribe cannot honour: accepted, an ``Error`` message saying what to send, close
  4008 (Deepgram's 1008, a bad request, in the range daphne can send). Every realtime
  worker full, or none answering: ``Error``, then 4429 or 4503 as on ``/v1/stream``.
- ``multichannel=true`` with ``channels`` N: a session of the worker per channel (each a
  stream job, each counted against the session cap; the request id is the first's), the
  interleaved audio split among them, each channel's results with its ``channel_index``;
  ``Metadata`` once every channel has closed.
- Client messages: binary audio; ``KeepAlive``; ``Finalize`` (decode what was sent, answer
  one ``Results`` with ``from_finalize: true``; the session goes on); ``CloseStream`` (the
  last ``Results``, ``Metadata``, close 1000). Neither audio nor a text message for
  ``IDLE_S``: ``Error`` and close 4011 (Deepgram's 1011); what was said is kept.
"""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from rest_framework.exceptions import ValidationError

from deepgram_compat.audio import PcmFrames
from deepgram_compat.live import LiveTranslation, ParameterError, error_message, read_live
from realtime.consumers import MAX_FRAME_BYTES, StreamConsumer
from scribe.errors import problems_text
from transcription.serializers import options_parse

IDLE_S = 10.0
# Deepgram closes with 1008 (a bad request) and 1011 (idle); an application under daphne
# may close only with 1000 or 3000-4999 (autobahn), so: 4000 + Deepgram's code.
BAD_REQUEST_CLOSE = 4008
IDLE_CLOSE = 4011


class DeepgramLiveConsumer(StreamConsumer):
    subprotocol = "token"

    async def connect(self) -> None:
        key = self.scope.get("api_key")
        if key is None or not key.has_scope("stream"):
            await self.close()  # before accepting: daphne answers HTTP 403
            return
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"), True)
        query.pop("api_key", None)  # a browser's key, not a Deepgram parameter
        try:
            live = read_live(query)
            # The job options' schema, live lane: the language, hotwords, sample rate.
            options = await database_sync_to_async(options_parse)(
                {**live.scribe_options(), "encoding": "pcm_s16le"},
                owner=key.owner_id,
                lane="live",
            )
        except ParameterError as exc:
            await self._bad_request(exc.message)
            return
        except ValidationError as exc:
            await self._bad_request(problems_text(exc.detail))
            return
        # multichannel: a session of the worker per channel (each counted against the
        # cap, each a stream job), each channel's results translated on their own.
        self.channels = live.transcribed_channels
        self.lives = [LiveTranslation(live, channel) for channel in range(self.channels)]
        self.channels_open = self.channels
        self.frames = PcmFrames(live.encoding, live.channels)
        self.options = options
        await super().connect()

    async def _bad_request(self, text: str) -> None:
        await self._accept()
        await self._error("Bad Request", text)
        await self.close(code=BAD_REQUEST_CLOSE)

    async def stream_opened(self, message: dict) -> None:
        was_accepted = self.accepted
        await super().stream_opened(message)
        if self.accepted and not was_accepted:
            self.started = True
            await self._to_worker(
                {
                    "type": "session.start",
                    "options": self.options.stored(live=True),
                    "tuning": self.lives[0].query.tuning(),
                }
            )
            self.heard_at = time.monotonic()
            self.idle_timer = asyncio.ensure_future(self._close_when_idle())

    def _cancel_timers(self) -> None:
        super()._cancel_timers()
        self._cancel_idle_timer()

    def _cancel_idle_timer(self) -> None:
        timer = getattr(self, "idle_timer", None)
        if timer is not None:
            timer.cancel()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        size = len(bytes_data) if bytes_data is not None else len((text_data or "").encode())
        if size > MAX_FRAME_BYTES:
            await self._frame_too_large(size)
            return
        if not self.started or self.closing:
            return
        self.heard_at = time.monotonic()
        if bytes_data is not None:
            if self.channels == 1:
                pcms = [self.frames.pcm(bytes_data)]
            else:
                pcms = self.frames.split(bytes_data)
            for channel, (pcm, live) in enumerate(zip(pcms, self.lives, strict=True)):
                if pcm:
                    await self._to_worker({"type": "session.audio", "audio": pcm}, channel=channel)
                    await self._send_all(live.audio(pcm))
            return
        try:
            kind = json.loads(text_data or "").get("type")
        except (json.JSONDecodeError, AttributeError):
            kind = None
        if kind == "Finalize":
            await self._to_worker({"type": "session.finalize"})
        elif kind == "CloseStream":
            self._cancel_idle_timer()  # the client waits for the last results now
            await self._to_worker({"type": "session.stop"})
        elif kind != "KeepAlive":
            await self._error(
                "SchemaError",
                f"Unknown message {text_data!r}: send KeepAlive, Finalize or CloseStream as "
                'JSON ({"type": "Finalize"}); audio goes in binary frames.',
            )

    async def stream_event(self, message: dict) -> None:
        self.last_worker_message = time.monotonic()
        event = message["event"]
        channel = event.get("channel") or 0
        kind = event.get("type")
        if kind == "ready":
            if channel == 0:  # the request id is the first channel's job
                for live in self.lives:
                    live.event(event)
            return
        await self._send_all(self.lives[channel].event(event))
        if kind == "closed":
            self.channels_open -= 1
            if self.channels_open > 0:
                return  # Metadata once every channel has said its last
            await self._send_all([self.lives[0].metadata()])  # the first channel's: the request's
            self.closing = True
            await self.close(code=1000)

    async def _close_when_idle(self) -> None:
        while True:
            await asyncio.sleep(min(1.0, IDLE_S / 4))
            if time.monotonic() - self.heard_at >= IDLE_S:
                await self._error(
                    "NET-0001",
                    f"No audio and no KeepAlive for {IDLE_S:.0f} s: the session is closed (what "
                    'was said is kept). Send {"type": "KeepAlive"} while there is no audio.',
                )
                await self.close(code=IDLE_CLOSE)
                return

    async def _send_all(self, messages: list[dict]) -> None:
        for message in messages:
            await self.send(text_data=json.dumps(message, ensure_ascii=False))

    async def _error(self, code: str, text: str) -> None:
        await self._send_all([error_message(code, text)])
