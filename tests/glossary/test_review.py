"""One review of a segment on both lanes: a live final is flagged and corrected exactly as
the same segment of a file job's result is."""

from __future__ import annotations

import copy

from glossary.normalize import RuleSpec, TermSpec
from glossary.review import Review, post_process, segment_review

REVIEW = Review(
    mode="rules",
    terms=[TermSpec("Kubernetes"), TermSpec("gRPC")],
    rules=[RuleSpec("literal", "gateway", "Gateway")],
    phrases=["Thanks for watching"],
)


def _segment(index: int, text: str, avg_logprob: float) -> dict:
    return {
        "id": index,
        "start": float(index),
        "end": index + 1.0,
        "text": text,
        "avg_logprob": avg_logprob,
        "no_speech_prob": 0.0,
        "compression_ratio": 1.1,
        "words": [{"start": float(index), "end": index + 0.5, "text": " We", "probability": 0.3}],
    }


def test_a_live_final_is_reviewed_as_a_file_jobs_segment_is():
    segments = [
        _segment(0, " We run qber needs behind the CRPC gateway", -1.2),
        _segment(1, " Thanks for watching", -0.1),
    ]

    processed = post_process(
        {"language": "en", "segments": copy.deepcopy(segments), "run": {}},
        mode=REVIEW.mode,
        terms=REVIEW.terms,
        rules=REVIEW.rules,
        phrases=REVIEW.phrases,
    )
    live = [segment_review(s, review=REVIEW, speech=None) for s in segments]

    [heard] = processed["segments"]
    assert heard["text"] == " We run Kubernetes behind the gRPC Gateway"
    assert live[0] == heard
    assert live[1] == processed["suppressed_segments"][0]  # flagged, not corrected
    assert segments[0]["text"].endswith("CRPC gateway")  # the caller's final is untouched
