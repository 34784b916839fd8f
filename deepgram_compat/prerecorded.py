"""A scribe result as Deepgram's pre-recorded response (``POST /v1/listen``), for the
synchronous answer and for the callback body alike.

``results.channels[]`` has one entry per audio channel with ``multichannel`` (scribe's
``diarize: "channels"``: each channel transcribed on its own), else one;
``alternatives[0]`` is the transcript with every word, ``paragraphs`` when asked (or with
``smart_format``), and ``results.utterances`` when asked. Whisper writes punctuation and
casing itself: with ``punctuate`` or ``smart_format`` the transcript is Whisper's text as
it is; without either, its punctuation is taken out (casing kept: ``vLLM`` stays
``vLLM``), as Deepgram leaves it out. Each word's ``word`` is Deepgram's plain form
(lowercase, no punctuation), ``punctuated_word`` Whisper's.
"""

from __future__ import annotations

import dataclasses
import json
import unicodedata
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from deepgram_compat.errors import deepgram_error
from transcription.models import Job
from transcription.waiting import JobState, failure, job_result

PARAGRAPH_GAP_S = 1.5  # a silence this long between sentences starts a paragraph
SENTENCE_ENDS = tuple(".?!。？！")
MODEL_NAMESPACE = uuid.UUID("5c6f0c2e-8a43-4b8e-9a59-0d3f1c1e2b7a")  # model_uuid = uuid5(name)


@dataclass(frozen=True)
class Rendering:
    """How a Deepgram request asked for its answer; kept in the job's options
    (``JobOptions.deepgram``) for the callback."""

    punctuate: bool = False
    smart_format: bool = False
    utterances: bool = False
    paragraphs: bool = False
    multichannel: bool = False
    diarize: bool = False
    utt_split: float = 0.8
    sha256: str = ""  # of the audio, as Deepgram's metadata has it
    ignored: tuple[str, ...] = ()  # parameters accepted and not acted on

    @classmethod
    def from_stored(cls, data: Mapping[str, Any]) -> Rendering:
        known = {field.name for field in dataclasses.fields(cls)}
        values = {name: value for name, value in data.items() if name in known}
        values["ignored"] = tuple(values.get("ignored") or ())
        return cls(**values)

    def stored(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["ignored"] = list(self.ignored)
        return data


def model_uuid(name: str) -> str:
    return str(uuid.uuid5(MODEL_NAMESPACE, name))


def response(
    result: Mapping[str, Any], *, request_id: str, created: datetime, rendering: Rendering
) -> dict[str, Any]:
    """Deepgram's ``ListenV1Response`` for a completed job's stored json ``result``."""
    channels = _channel_segments(result, multichannel=rendering.multichannel)
    results: dict[str, Any] = {
        "channels": [
            {
                "alternatives": [_alternative(segments, rendering)],
                "detected_language": result.get("language"),
            }
            for segments in channels
        ]
    }
    if rendering.utterances:
        results["utterances"] = [
            utterance
            for index, segments in enumerate(channels)
            for utterance in _utterances(segments, index, rendering, request_id)
        ]
    return {
        "metadata": _metadata(result, request_id, created, len(channels), rendering),
        "results": results,
    }


def _metadata(
    result: Mapping[str, Any],
    request_id: str,
    created: datetime,
    channels: int,
    rendering: Rendering,
) -> dict[str, Any]:
    run = result.get("run") or {}
    name = run.get("model_name") or "whisper"
    model_id = model_uuid(name)
    metadata: dict[str, Any] = {
        "transaction_key": "deprecated",
        "request_id": request_id,
        "sha256": rendering.sha256,
        "created": created.isoformat().replace("+00:00", "Z"),
        "duration": result.get("duration_s") or 0.0,
        "channels": channels,
        "models": [model_id],
        "model_info": {
            model_id: {"name": name, "version": run.get("pipeline_version", ""), "arch": "whisper"}
        },
    }
    if rendering.ignored:
        metadata["warnings"] = [
            {
                "parameter": name,
                "type": "unsupported_parameter",
                "message": f"scribe accepts {name} and does not act on it.",
            }
            for name in rendering.ignored
        ]
    return metadata


def _channel_segments(
    result: Mapping[str, Any], *, multichannel: bool
) -> list[list[Mapping[str, Any]]]:
    """The result's segments per channel: by their ``CHANNEL_n`` labels with multichannel."""
    segments = list(result.get("segments") or ())
    if not multichannel:
        return [segments]
    count = 1 + max((_channel(s) for s in segments), default=0)
    count = max(count, len(result.get("speakers") or ()))
    return [[s for s in segments if _channel(s) == index] for index in range(count)]


def _channel(segment: Mapping[str, Any]) -> int:
    return _number(segment.get("speaker")) or 0


def _number(label: Any) -> int | None:
    """``SPEAKER_01`` → 1, ``CHANNEL_0`` → 0; None without a label."""
    if not isinstance(label, str):
        return None
    digits = label.rpartition("_")[2]
    return int(digits) if digits.isdigit() else None


def plain(word: str) -> str:
    """Deepgram's ``word``: lowercase, without the punctuation around it."""
    return _unpunctuated(word).lower()


def _unpunctuated(text: str) -> str:
    start, end = 0, len(text)
    while start < end and unicodedata.category(text[start]).startswith("P"):
        start += 1
    while end > start and unicodedata.category(text[end - 1]).startswith("P"):
        end -= 1
    return text[start:end]


def _words(segments: Iterable[Mapping[str, Any]], rendering: Rendering) -> list[dict[str, Any]]:
    words = []
    for segment in segments:
        for raw in segment.get("words") or ():
            text = raw["text"].strip()
            if not text:
                continue
            word: dict[str, Any] = {
                "word": plain(text) or text,
                "start": raw["start"],
                "end": raw["end"],
                "confidence": round(raw["probability"], 4),
                "punctuated_word": text,
            }
            speaker = _number(raw.get("speaker") or segment.get("speaker"))
            if rendering.diarize:
                word["speaker"] = 0 if rendering.multichannel else (speaker or 0)
            words.append(word)
    return words


def _transcript(texts: Iterable[str], rendering: Rendering) -> str:
    text = " ".join(t.strip() for t in texts if t.strip())
    if rendering.punctuate or rendering.smart_format:
        return text
    return " ".join(filter(None, (_unpunctuated(token) for token in text.split())))


def _alternative(segments: list[Mapping[str, Any]], rendering: Rendering) -> dict[str, Any]:
    words = _words(segments, rendering)
    scores = [w["confidence"] for w in words] or [s.get("confidence", 0.0) for s in segments]
    alternative: dict[str, Any] = {
        "transcript": _transcript((s["text"] for s in segments), rendering),
        "confidence": round(sum(scores) / len(scores), 4) if scores else 0.0,
        "words": words,
    }
    if rendering.paragraphs or rendering.smart_format:
        alternative["paragraphs"] = _paragraphs(words, rendering)
    return alternative


def _sentences(words: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Words grouped into sentences: each ends at a word ending a sentence."""
    sentences: list[list[dict[str, Any]]] = [[]]
    for word in words:
        sentences[-1].append(word)
        if word["punctuated_word"].endswith(SENTENCE_ENDS):
            sentences.append([])
    return [s for s in sentences if s]


def _paragraphs(words: list[dict[str, Any]], rendering: Rendering) -> dict[str, Any]:
    """Deepgram's ``paragraphs``: sentences, a new paragraph at a change of speaker or after
    a silence of PARAGRAPH_GAP_S."""
    paragraphs: list[list[list[dict[str, Any]]]] = []
    for sentence in _sentences(words):
        last = paragraphs[-1][-1] if paragraphs else None
        if (
            last is None
            or sentence[0].get("speaker") != last[-1].get("speaker")
            or sentence[0]["start"] - last[-1]["end"] >= PARAGRAPH_GAP_S
        ):
            paragraphs.append([])
        paragraphs[-1].append(sentence)
    shaped, texts = [], []
    for paragraph in paragraphs:
        sentences = [
            {
                "text": _transcript((w["punctuated_word"] for w in s), rendering),
                "start": s[0]["start"],
                "end": s[-1]["end"],
            }
            for s in paragraph
        ]
        item: dict[str, Any] = {
            "sentences": sentences,
            "num_words": sum(len(s) for s in paragraph),
            "start": sentences[0]["start"],
            "end": sentences[-1]["end"],
        }
        text = " ".join(s["text"] for s in sentences)
        if rendering.diarize:
            item["speaker"] = paragraph[0][0].get("speaker", 0)
            text = f"Speaker {item['speaker']}: {text}"
        shaped.append(item)
        texts.append(text)
    return {"transcript": "\n" + "\n\n".join(texts) + "\n" if texts else "", "paragraphs": shaped}


def _utterances(
    segments: list[Mapping[str, Any]], channel: int, rendering: Rendering, request_id: str
) -> list[dict[str, Any]]:
    """Deepgram's utterances of one channel: words split at a silence of ``utt_split`` or a
    change of speaker."""
    groups: list[list[dict[str, Any]]] = []
    for word in _words(segments, rendering):
        last = groups[-1][-1] if groups else None
        if (
            last is None
            or word["start"] - last["end"] >= rendering.utt_split
            or word.get("speaker") != last.get("speaker")
        ):
            groups.append([])
        groups[-1].append(word)
    utterances = []
    for group in groups:
        utterance: dict[str, Any] = {
            "start": group[0]["start"],
            "end": group[-1]["end"],
            "confidence": round(sum(w["confidence"] for w in group) / len(group), 4),
            "channel": channel,
            "transcript": _transcript((w["punctuated_word"] for w in group), rendering),
            "words": group,
            "speaker": group[0].get("speaker", 0),
            "id": str(uuid.uuid5(uuid.UUID(request_id), f"{channel}:{group[0]['start']}")),
        }
        utterances.append(utterance)
    return utterances


# --- the callback ----------------------------------------------------------------------


def callback_body(job: Job) -> str:
    """The body of a Deepgram request's callback: the response of its completed job, or
    Deepgram's error shape for one that failed, was cancelled or was erased (content-free:
    ``deliveries_erase`` rewrites a delivery with it)."""
    request_id = str(job.pk)
    if job.erased_at is not None:
        body = deepgram_error(
            "job_erased",
            "The transcript was erased (by its owner or the retention period); nothing of "
            "it is kept.",
            request_id,
        )
    elif job.status == Job.Status.COMPLETED and job.result_path:
        rendering = Rendering.from_stored(job.opts.deepgram or {})
        result = job_result(result_path=job.result_path)
        body = response(result, request_id=request_id, created=job.created_at, rendering=rendering)
    else:
        state = JobState(job.status, (), job.error_code, job.error_message, job.result_path)
        _, code, message = failure(state)
        body = deepgram_error(code, message, request_id)
    return json.dumps(body, ensure_ascii=False)
