"""Live keywords (the start option keywords: true) over /v1/stream in process, with the
random-weight model on real speech and the loopback LLM: keywords events come beside the
finals, and a slow LLM never holds a caption back. Over real processes:
tests/e2e/test_notes_e2e.py."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from tests.conftest import shared_clip
from tests.llm import FakeLLM
from tests.realtime.test_stream_consumer import (  # noqa: F401 - fixtures used here
    communicator,
    stream_audio,
    stream_key,
    stream_settings,
)
from transcription.engine.audio import decode_all

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def keywords_settings(stream_settings):  # noqa: F811
    stream_settings.SCRIBE_LIVE_KEYWORDS_INTERVAL_S = 1
    return stream_settings


async def session_events(secret: str, speech, options: dict) -> list[tuple[float, dict]]:
    """Every event of a session that streams ``speech`` then stops, with when it came."""
    comm = communicator(secret)
    assert (await comm.connect())[0]
    await comm.send_json_to({"type": "start", "options": options})
    events: list[tuple[float, dict]] = []

    async def read() -> None:
        while True:
            event = json.loads(await comm.receive_from(timeout=90))
            events.append((time.monotonic(), event))
            if event["type"] == "closed":
                return

    reader = asyncio.ensure_future(read())
    await stream_audio(comm, speech, pause_s=0.2)
    await asyncio.sleep(3)  # room for the last extraction's answer
    await comm.send_json_to({"type": "stop"})
    await reader
    await comm.wait()
    return events


def first_word(body: dict) -> dict:
    """A keyword that was said: the first word of the text sent (the random-weight model's
    words are short, which the loopback server's own choice leaves out)."""
    said = body["messages"][1]["content"].split("Transcript:\n", 1)[1].split()
    return {"keywords": [{"text": said[0], "category": "topic"}] if said else []}


def test_keywords_events_come_beside_the_finals(keywords_settings, stream_key):  # noqa: F811
    speech = decode_all(shared_clip("jfk.flac"))
    with FakeLLM(answer=first_word) as llm:
        keywords_settings.SCRIBE_LLM_BASE_URL = llm.base_url
        events = asyncio.run(
            session_events(stream_key[1], speech, {"language": "en", "keywords": True})
        )
    said = " ".join(e["segment"]["text"] for _, e in events if e["type"] == "final")
    keywords = [e for _, e in events if e["type"] == "keywords"]
    assert keywords, [e["type"] for _, e in events]
    for event in keywords:
        for keyword in event["keywords"]:
            assert set(keyword) == {"text", "category", "count", "first_seen"}
            assert keyword["category"] in {
                "person",
                "organisation",
                "product",
                "technology",
                "place",
                "date",
                "topic",
            }
    last = keywords[-1]["keywords"]
    assert any(k["count"] >= 1 and k["first_seen"] is not None for k in last), (last, said)
    # Only what was said since the last extraction is sent each time.
    sent = [r["body"]["messages"][1]["content"] for r in llm.requests]
    assert len(sent) == len(keywords)


def test_a_slow_llm_never_holds_a_caption_back(keywords_settings, stream_key):  # noqa: F811
    speech = decode_all(shared_clip("jfk.flac"))
    started = time.monotonic()
    with FakeLLM(answer=first_word, delay_s=30) as llm:
        keywords_settings.SCRIBE_LLM_BASE_URL = llm.base_url
        events = asyncio.run(
            session_events(stream_key[1], speech, {"language": "en", "keywords": True})
        )
        asked = len(llm.requests)
    kinds = [e["type"] for _, e in events]
    # Asked for keywords at the first final; every caption and the close came while the
    # LLM had not answered yet.
    assert asked >= 1 and "final" in kinds and kinds[-1] == "closed"
    assert "keywords" not in kinds
    assert events[-1][0] - started < 30


def test_keywords_without_an_llm_are_refused_at_start(keywords_settings, stream_key):  # noqa: F811
    keywords_settings.SCRIBE_LLM_BASE_URL = ""

    async def scenario():
        comm = communicator(stream_key[1])
        assert (await comm.connect())[0]
        await comm.send_json_to({"type": "start", "options": {"keywords": True}})
        event = json.loads(await comm.receive_from(timeout=60))
        await comm.disconnect()
        return event

    event = asyncio.run(scenario())
    assert event["type"] == "error" and event["code"] == "bad_options"
    assert "SCRIBE_LLM_BASE_URL" in event["message"]
