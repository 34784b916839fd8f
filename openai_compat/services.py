"""Reads and renderings behind the OpenAI-compatible endpoints: what a job has produced so
far, and a stored result in OpenAI's response formats."""

from __future__ import annotations

import json
import math
from typing import Any

from openai_compat.serializers import TranscriptionRequest, served_models
from transcription.engine import CONTENT_TYPES, render, transcript_from_dict


def models_list() -> dict[str, Any]:
    """``GET /v1/models``: the names a transcription request may give, in OpenAI's shape.

    ``created`` is 0: scribe does not know when a model's weights were made.
    """
    return {
        "object": "list",
        "data": [
            {"id": name, "object": "model", "created": 0, "owned_by": "scribe"}
            for name in served_models()
        ],
    }


def usage(result: dict[str, Any]) -> dict[str, Any]:
    """Audio seconds, rounded up as OpenAI counts them."""
    return {"type": "duration", "seconds": math.ceil(result.get("duration_s") or 0.0)}


def verbose_json(result: dict[str, Any], request: TranscriptionRequest) -> dict[str, Any]:
    """OpenAI's ``verbose_json``: segments unless only words were asked, words if asked.

    ``language`` is the ISO code (``en``, ``ko``), as scribe detects it. ``seek`` is the
    segment's start in 10 ms frames of the file (scribe decodes speech regions, not
    OpenAI's fixed 30 s windows).
    """
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": result["language"],
        "duration": result["duration_s"],
        "text": result["text"],
    }
    if request.segments:
        body["segments"] = [
            {
                "id": i,
                "seek": round(s["start"] * 100),
                "start": s["start"],
                "end": s["end"],
                "text": s["text"],
                "tokens": s.get("tokens") or [],
                "temperature": s["temperature"],
                "avg_logprob": s["avg_logprob"],
                "compression_ratio": s["compression_ratio"],
                "no_speech_prob": s["no_speech_prob"],
            }
            for i, s in enumerate(result["segments"])
        ]
    if request.words:
        body["words"] = [
            {"word": w["text"].strip(), "start": w["start"], "end": w["end"]}
            for s in result["segments"]
            for w in s.get("words") or ()
        ]
    body["usage"] = usage(result)
    return body


def response_content(result: dict[str, Any], request: TranscriptionRequest) -> tuple[str, str]:
    """The body and content type of a completed transcription in the asked format."""
    fmt = request.response_format
    if fmt == "json":
        body = {"text": result["text"], "usage": usage(result)}
        return json.dumps(body, ensure_ascii=False), CONTENT_TYPES["json"]
    if fmt == "verbose_json":
        return json.dumps(verbose_json(result, request), ensure_ascii=False), CONTENT_TYPES["json"]
    if fmt == "text":
        return result["text"] + "\n", CONTENT_TYPES["txt"]
    return render(transcript_from_dict(result), fmt), CONTENT_TYPES[fmt]
