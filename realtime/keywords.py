"""Live keywords: the LLM's keywords of what has been said, sent beside the captions.

A session started with ``keywords: true`` keeps its finals here as they reach the client.
At most every ``SCRIBE_LIVE_KEYWORDS_INTERVAL_S``, when new finals have come, the text
said since the last extraction goes to the LLM (notes/making.py's keywords, in a thread:
the consumer's loop, and so the captions, never wait for it; the worker that decodes is
another process). The keywords found so far are counted again over everything said and
sent as ``{"type": "keywords", "keywords": [{"text", "category", "count",
"first_seen"}]}``. Only one extraction runs at a time; a failed one is logged, sent as
nothing, and the next tries again with the text it missed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django import db
from django.conf import settings

from accounts.models import Owner
from glossary.services import llm_audit
from notes import making
from notes.models import KeywordCategory
from notes.services import glossary_spellings
from notes.structured import NotesError, structured_answer
from scribe.llm import llm_config
from transcription.models import Job

logger = logging.getLogger(__name__)

Send = Callable[[dict[str, Any]], Awaitable[None]]


class LiveKeywords:
    """One session's keywords, extracted as its finals accumulate."""

    def __init__(self, *, owner_id: int, glossary_id: int | None, send: Send) -> None:
        self.owner_id, self.glossary_id, self.send = owner_id, glossary_id, send
        self.job_id: str | None = None
        self.lines: list[making.Line] = []
        self.sent_upto = 0  # lines already given to the LLM
        self.found: list[dict[str, str]] = []
        self.last_run = 0.0
        self.task: asyncio.Task | None = None

    def final(self, segment: dict[str, Any]) -> None:
        """A final reached the client: keep it, and extract when one is due."""
        text = (segment.get("text") or "").strip()
        if text:
            self.lines.append(making.Line(float(segment["start"]), float(segment["end"]), text))
        interval = settings.SCRIBE_LIVE_KEYWORDS_INTERVAL_S
        due = time.monotonic() - self.last_run >= interval
        if due and self.sent_upto < len(self.lines) and (self.task is None or self.task.done()):
            self.last_run = time.monotonic()
            self.task = asyncio.ensure_future(self._extract())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    async def _extract(self) -> None:
        upto = len(self.lines)
        try:
            # Not in Channels' one thread for database calls (database_sync_to_async): the
            # session's own database work must never queue behind an LLM's answer.
            found, keywords = await sync_to_async(self._keywords, thread_sensitive=False)(upto)
        except NotesError as exc:
            logger.warning("live keywords of job %s: %s", self.job_id, exc.message)
            return
        except Exception:
            logger.exception("live keywords of job %s failed", self.job_id)
            return
        self.found, self.sent_upto = found, upto
        await self.send({"type": "keywords", "keywords": keywords})

    def _keywords(self, upto: int) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
        """The LLM's keywords of the lines not yet given to it, added to those found before;
        all of them counted over every line (runs in a thread of its own, whose database
        connection is closed after)."""
        try:
            return self._keywords_found(upto)
        finally:
            db.connection.close()

    def _keywords_found(self, upto: int) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
        config = llm_config()
        if config is None:
            raise NotesError("llm_not_configured", "No LLM is configured (SCRIBE_LLM_BASE_URL).")
        ask = functools.partial(
            structured_answer,
            config=config,
            audit=llm_audit(
                owner=Owner.objects.filter(pk=self.owner_id).first(),
                job=Job.objects.filter(pk=self.job_id).first() if self.job_id else None,
            ),
            attempts=settings.SCRIBE_LLM_NOTES_ATTEMPTS,
        )
        categories = list(KeywordCategory.objects.values_list("name", flat=True)) or ["topic"]
        spellings = glossary_spellings(self.owner_id, self.glossary_id)
        new = making.Transcript(tuple(self.lines[self.sent_upto : upto]), None, None)
        answer = making.keywords_make(
            new,
            categories=categories,
            spellings=spellings,
            ask=ask,
            budget=making.Budget(settings.SCRIBE_LLM_CONTEXT_TOKENS),
            counted=False,
        )
        found = self.found + answer.data
        return found, making.keywords_counted(found, self.lines[:upto], spellings)
