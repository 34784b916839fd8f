"""LLM correction against an OpenAI-compatible server the tests start on loopback."""

from __future__ import annotations

import re

import pytest

from glossary.bias import Bias
from glossary.models import LLMAuditRecord
from glossary.normalize import TermSpec
from glossary.review import post_process
from glossary.services import job_result_post_process, llm_audit
from scribe.llm import LLMConfig, mask, unmask
from tests.llm import FakeLLM
from transcription.models import Job

pytestmark = pytest.mark.django_db

TERMS = [TermSpec("vLLM", ("브이엘엘엠",)), TermSpec("Kubernetes", ("쿠버네티스",))]


def result_with(*segments: tuple[str, float]) -> dict:
    return {
        "language": "ko",
        "segments": [
            {
                "id": i,
                "start": i * 2.0,
                "end": i * 2.0 + 1.5,
                "text": f" {text}",
                "avg_logprob": logprob,
                "no_speech_prob": 0.0,
                "compression_ratio": 1.0,
                "words": None,
            }
            for i, (text, logprob) in enumerate(segments)
        ],
        "speech": [],
        "run": {"decoding": {"vad": False}},
    }


def config(base_url: str, **overrides) -> LLMConfig:
    return LLMConfig(
        **{
            "base_url": base_url,
            "model": "test-model",
            "api_key": "k",
            "allowed_hosts": ("127.0.0.1",),
            "timeout_s": 5,
            **overrides,
        }
    )


def test_only_low_confidence_segments_are_sent_and_replies_are_used():
    segments = result_with(
        ("브이엘엘엠 서빙 성능이 조아요", -1.6),
        ("회의를 시작하겠습니다", -0.1),
        ("쿠버네티스 노드가 두개 입니다", -2.0),
    )
    with FakeLLM(
        lambda user: (
            re.search(r"Sentence to correct: (.*)", user)
            .group(1)
            .replace("조아요", "좋아요")
            .replace("두개 입니다", "두 개입니다")
        )
    ) as llm:
        processed = post_process(
            segments,
            mode="llm",
            terms=TERMS,
            rules=[],
            phrases=[],
            llm_settings=config(llm.base_url),
            audit=llm_audit(),
        )

    assert llm.sentences_sent() == ["vLLM 서빙 성능이 조아요", "Kubernetes 노드가 두개 입니다"]
    texts = [s["text"].strip() for s in processed["segments"]]
    assert texts == [
        "vLLM 서빙 성능이 좋아요",
        "회의를 시작하겠습니다",
        "Kubernetes 노드가 두 개입니다",
    ]
    assert [s["raw_text"].strip() for s in processed["segments"]][
        0
    ] == "브이엘엘엠 서빙 성능이 조아요"
    stages = {s["name"]: s["changes"] for s in processed["post_correction"]["stages"]}
    assert [c["segment"] for c in stages["glossary"]] == [0, 2]
    assert [c["segment"] for c in stages["llm"]] == [0, 2]
    assert stages["llm"][0]["diff"] == [{"op": "replace", "before": "조아요", "after": "좋아요"}]
    assert LLMAuditRecord.objects.count() == 2
    assert all(
        r.outcome == "accepted" and r.characters_sent > 0 for r in LLMAuditRecord.objects.all()
    )


def test_a_reply_that_drops_a_glossary_term_is_rejected():
    segments = result_with(("vLLM 서빙이 느려요", -2.0))
    with FakeLLM(lambda user: "브이엘엘엠 서빙이 느려요") as llm:
        processed = post_process(
            segments,
            mode="llm",
            terms=TERMS,
            rules=[],
            phrases=[],
            llm_settings=config(llm.base_url),
            audit=llm_audit(),
        )

    assert processed["segments"][0]["text"].strip() == "vLLM 서빙이 느려요"
    assert processed["segments"][0]["llm"].startswith("rejected: reply dropped glossary terms")
    assert LLMAuditRecord.objects.get().outcome.startswith("rejected")


def test_a_host_off_the_allowlist_is_refused_without_a_connection():
    segments = result_with(("vLLM 서빙이 느려요", -2.0))
    with FakeLLM(lambda user: "anything") as llm:
        processed = post_process(
            segments,
            mode="llm",
            terms=TERMS,
            rules=[],
            phrases=[],
            llm_settings=config(llm.base_url, allowed_hosts=("llm.internal.example",)),
            audit=llm_audit(),
        )

    assert llm.requests == [], "nothing reached the server"
    assert "not in SCRIBE_LLM_ALLOWED_HOSTS" in processed["llm_error"]
    assert processed["segments"][0]["text"].strip() == "vLLM 서빙이 느려요"
    assert LLMAuditRecord.objects.count() == 0


def test_an_unreachable_endpoint_falls_back_to_the_uncorrected_text():
    with FakeLLM(lambda user: "x") as llm:
        url = llm.base_url
    segments = result_with(("쿠버네티스 배포", -2.0))  # the server is closed now

    processed = post_process(
        segments,
        mode="llm",
        terms=TERMS,
        rules=[],
        phrases=[],
        llm_settings=config(url, timeout_s=2),
        audit=llm_audit(),
    )

    assert processed["segments"][0]["text"].strip() == "Kubernetes 배포"
    assert LLMAuditRecord.objects.get().outcome.startswith("failed")


def test_emails_and_phone_numbers_are_masked_before_sending_and_restored_after():
    segments = result_with(("연락은 kim.dev@example.com 이나 010-1234-5678 로 주세요", -2.0))
    with FakeLLM(lambda user: re.search(r"Sentence to correct: (.*)", user).group(1)) as llm:
        processed = post_process(
            segments,
            mode="llm",
            terms=[],
            rules=[],
            phrases=[],
            llm_settings=config(llm.base_url),
            audit=llm_audit(),
        )

    sent = llm.requests[0]["body"]["messages"][-1]["content"]
    assert "kim.dev@example.com" not in sent and "010-1234-5678" not in sent
    assert processed["segments"][0]["text"].strip() == segments["segments"][0]["text"].strip()


def test_masking_round_trips():
    masked, mapping = mask("mail a@b.co or call +82 10 1234 5678")
    assert masked == "mail [EMAIL1] or call [PHONE2]"
    assert unmask(masked, mapping) == "mail a@b.co or call +82 10 1234 5678"


def test_hallucinations_leave_the_transcript_and_other_flags_only_mark_unless_asked():
    segments = result_with(
        ("배포는 끝났습니다", -0.1),
        ("시청해주셔서 감사합니다", -0.1),
        ("아마 그럴 겁니다", -1.5),
        ("네 네 네 네 네 네", -0.1),
    )
    phrases = ["시청해주셔서 감사합니다"]

    marked = post_process(segments, mode="none", terms=[], rules=[], phrases=phrases)
    dropped = post_process(
        segments, mode="none", terms=[], rules=[], phrases=phrases, drop_flagged=True
    )

    assert [s["flags"] for s in marked["segments"]] == [[], ["low_confidence"]]
    assert marked["text"] == "배포는 끝났습니다 아마 그럴 겁니다"
    assert [(s["raw_text"].strip(), s["flags"]) for s in marked["suppressed_segments"]] == [
        ("시청해주셔서 감사합니다", ["known_hallucination"]),
        ("네 네 네 네 네 네", ["repetition"]),
    ]
    assert marked["post_correction"]["dropped_segments"] == 2
    assert [s["text"].strip() for s in dropped["segments"]] == ["배포는 끝났습니다"]
    assert dropped["post_correction"]["dropped_segments"] == 3


@pytest.mark.parametrize(
    ("options", "texts"),
    [
        ({}, ["배포는 끝났습니다", "아마 그럴 겁니다"]),
        ({"drop_flagged": True}, ["배포는 끝났습니다"]),
    ],
)
def test_a_jobs_drop_flagged_option_decides_whether_its_flagged_segments_stay(
    owner_key, options, texts
):
    job = Job.objects.create(owner=owner_key[0].owner, options=options)
    # The second segment is flagged low_confidence (see the test above).
    result = result_with(("배포는 끝났습니다", -0.1), ("아마 그럴 겁니다", -1.5))

    processed = job_result_post_process(job, result, bias=Bias(None, None))

    assert [s["text"].strip() for s in processed["segments"]] == texts
    assert processed["post_correction"]["dropped_segments"] == 2 - len(texts)
