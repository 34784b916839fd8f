"""A stored result as Deepgram's pre-recorded response (deepgram_compat/prerecorded.py)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from deepgram_compat.prerecorded import Rendering, plain, response

REQUEST = str(uuid.uuid4())
CREATED = datetime(2026, 12, 6, 13, 0, tzinfo=UTC)


def word(text, start, end, probability=0.9, speaker=None):
    raw = {"text": text, "start": start, "end": end, "probability": probability}
    if speaker:
        raw["speaker"] = speaker
    return raw


def segment(text, words, speaker=None):
    raw = {"text": text, "start": words[0]["start"], "end": words[-1]["end"], "words": words}
    if speaker:
        raw["speaker"] = speaker
    return raw


def result(*segments, speakers=()):
    return {
        "language": "en",
        "duration_s": 10.0,
        "text": " ".join(s["text"].strip() for s in segments),
        "segments": list(segments),
        "speakers": list(speakers),
        "run": {"model_name": "tiny.en", "pipeline_version": "scribe-1"},
    }


TWO_SENTENCES = result(
    segment(
        " Serve it with vLLM.",
        [
            word(" Serve", 0.0, 0.4),
            word(" it", 0.4, 0.6),
            word(" with", 0.6, 0.8),
            word(" vLLM.", 0.8, 1.2),
        ],
    ),
    segment(" Really?", [word(" Really?", 4.0, 4.5, 0.5)]),
)


def render(data, **flags):
    return response(data, request_id=REQUEST, created=CREATED, rendering=Rendering(**flags))


def test_words_carry_deepgrams_plain_and_punctuated_forms_and_metadata_what_ran():
    body = render(TWO_SENTENCES, punctuate=True)

    [alternative] = body["results"]["channels"][0]["alternatives"]
    assert alternative["transcript"] == "Serve it with vLLM. Really?"
    assert [w["word"] for w in alternative["words"]] == ["serve", "it", "with", "vllm", "really"]
    assert alternative["words"][3]["punctuated_word"] == "vLLM."
    assert alternative["confidence"] == 0.82
    metadata = body["metadata"]
    assert metadata["created"] == "2026-12-06T13:00:00Z" and metadata["request_id"] == REQUEST
    [model] = metadata["models"]
    assert metadata["model_info"][model]["name"] == "tiny.en"
    assert "paragraphs" not in alternative and "utterances" not in body["results"]


def test_without_punctuate_the_transcript_loses_punctuation_not_casing():
    alternative = render(TWO_SENTENCES)["results"]["channels"][0]["alternatives"][0]
    assert alternative["transcript"] == "Serve it with vLLM Really"


def test_paragraphs_break_at_silences_and_utterances_at_utt_split():
    body = render(TWO_SENTENCES, smart_format=True, utterances=True, utt_split=2.0)

    paragraphs = body["results"]["channels"][0]["alternatives"][0]["paragraphs"]
    assert [len(p["sentences"]) for p in paragraphs["paragraphs"]] == [1, 1]  # a 2.8 s gap
    assert paragraphs["transcript"] == "\nServe it with vLLM.\n\nReally?\n"
    assert paragraphs["paragraphs"][0]["num_words"] == 4
    utterances = body["results"]["utterances"]
    assert [u["transcript"] for u in utterances] == ["Serve it with vLLM.", "Really?"]
    assert utterances[1]["start"] == 4.0 and utterances[1]["confidence"] == 0.5
    assert len({u["id"] for u in utterances}) == 2


def test_multichannel_answers_a_channel_per_label_and_diarize_numbers_speakers():
    stereo = result(
        segment(" Hello.", [word(" Hello.", 0.0, 0.5, speaker="CHANNEL_1")], "CHANNEL_1"),
        segment(" Hi.", [word(" Hi.", 0.2, 0.4, speaker="CHANNEL_0")], "CHANNEL_0"),
        speakers=["CHANNEL_1", "CHANNEL_0"],
    )
    body = render(stereo, multichannel=True, punctuate=True, utterances=True)
    channels = body["results"]["channels"]
    assert [c["alternatives"][0]["transcript"] for c in channels] == ["Hi.", "Hello."]
    assert body["metadata"]["channels"] == 2
    assert [u["channel"] for u in body["results"]["utterances"]] == [0, 1]

    two = result(
        segment(" Yes.", [word(" Yes.", 0.0, 0.5, speaker="SPEAKER_00")], "SPEAKER_00"),
        segment(" No.", [word(" No.", 0.6, 0.9, speaker="SPEAKER_01")], "SPEAKER_01"),
    )
    diarized = render(two, diarize=True, paragraphs=True, punctuate=True)
    alternative = diarized["results"]["channels"][0]["alternatives"][0]
    assert [w["speaker"] for w in alternative["words"]] == [0, 1]
    assert alternative["paragraphs"]["transcript"] == "\nSpeaker 0: Yes.\n\nSpeaker 1: No.\n"


def test_plain_words_and_an_empty_result():
    assert plain("«Kubernetes»,") == "kubernetes" and plain("it's") == "it's"
    empty = render(result())["results"]["channels"][0]["alternatives"][0]
    assert empty == {"transcript": "", "confidence": 0.0, "words": []}
