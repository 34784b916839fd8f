"""Glossary variants, rules, flags and metrics on real mixed Korean–English text."""

from __future__ import annotations

from pathlib import Path

import pytest
import tokenizers

from glossary.bias import glossary_bias
from glossary.flags import (
    DEFAULT_HALLUCINATIONS,
    hallucination_matcher,
    is_repetition_loop,
    segment_flags,
)
from glossary.metrics import cer, normalise, term_preservation, wer
from glossary.normalize import RuleSpec, TermSpec, apply_glossary, apply_rules
from tests.conftest import REPO_ROOT

TERMS = [
    TermSpec("vLLM", ("브이엘엘엠", "브이 엘엘엠", "VLLM")),
    TermSpec("Kubernetes", ("쿠버네티스", "쿠버네티즈")),
    TermSpec("FastAPI", ("패스트 API", "패스트에이피아이")),
    TermSpec("API", ("에이피아이",)),
]


@pytest.mark.parametrize(
    ("heard", "expected"),
    [
        (
            "그 에이피아이 서빙할 때 브이엘엘엠 쓰면 성능 대박이야",
            "그 API 서빙할 때 vLLM 쓰면 성능 대박이야",
        ),
        ("쿠버네티스에서 패스트 API 서버를 띄웠어", "Kubernetes에서 FastAPI 서버를 띄웠어"),
        ("패스트API랑 vllm 조합", "FastAPI랑 vLLM 조합"),
        ("쿠버네티즈 클러스터", "Kubernetes 클러스터"),
        ("rapid deployment of the api", "rapid deployment of the API"),
    ],
)
def test_variants_and_miscasings_become_the_canonical_term(heard, expected):
    assert apply_glossary(heard, TERMS) == expected


def test_latin_variants_only_match_whole_words():
    assert apply_glossary("capital apis rapid", [TermSpec("API")]) == "capital apis rapid"


def test_rules_apply_in_order():
    rules = [
        RuleSpec("literal", "지피유", "GPU"),
        RuleSpec("regex", r"(\d+)\s*기가", r"\1GB"),
        RuleSpec("acronym", "GPU"),  # any casing of GPU → the pattern's casing
        RuleSpec("acronym", "cuda", "CUDA"),
        RuleSpec("literal", "GPU", "GPU (H200)", case_sensitive=True),
    ]

    text = apply_rules("지피유 메모리 141 기가, gpu 두 장에 cuda 12", rules)

    assert text == "GPU (H200) 메모리 141GB, GPU (H200) 두 장에 CUDA 12"


def test_the_order_of_rules_matters():
    first = [RuleSpec("literal", "a", "b"), RuleSpec("literal", "b", "c")]
    assert apply_rules("a", first) == "c"
    assert apply_rules("a", list(reversed(first))) == "b"


def whisper_token_counter():
    path = REPO_ROOT.parent / "shared" / "whisper-tokenizer" / "tokenizer.json"
    if not path.is_file():
        pytest.skip(f"{path} is absent: the real Whisper tokenizer counts Korean tokens")
    tokenizer = tokenizers.Tokenizer.from_file(str(path))
    return lambda text: len(tokenizer.encode(text, add_special_tokens=False).ids)


def test_the_prompt_budget_holds_with_korean_terms_counted_by_the_real_tokenizer():
    count = whisper_token_counter()
    terms = [
        TermSpec(f"{name}", hotword=True)
        for name in (
            "쿠버네티스 오퍼레이터",
            "서비스 메시",
            "카나리 배포",
            "블루그린 배포",
            "오토스케일러",
            "분산 트레이싱",
            "관측 가능성",
            "서킷 브레이커",
            "레이트 리미터",
            "로드 밸런서",
            "컨테이너 오케스트레이션",
            "헬름 차트",
            "사이드카 프록시",
            "인그레스 컨트롤러",
            "시크릿 매니저",
            "피처 플래그",
            "데이터 파이프라인",
            "벡터 데이터베이스",
            "임베딩 모델",
            "토크나이저",
            "추론 서버",
            "양자화",
            "프롬프트 캐시",
            "배치 추론",
        )
    ]

    bias = glossary_bias(
        terms=terms,
        extra_hotwords=["vLLM"],
        count_tokens=count,
        hotwords_budget=40,
        prompt_budget=40,
    )

    assert count(" " + bias.hotwords) <= 40
    assert count(" " + bias.initial_prompt) <= 40
    assert bias.hotwords.startswith("vLLM 쿠버네티스 오퍼레이터"), "most important first"
    assert bias.dropped, "24 Korean terms do not fit in 80 tokens"
    assert set(bias.kept) | set(bias.dropped) == {"vLLM", *(t.canonical for t in terms)}
    assert bias.dropped == [t.canonical for t in terms if t.canonical in bias.dropped]


def test_terms_that_are_not_hotwords_go_only_to_the_prompt():
    bias = glossary_bias(
        terms=[TermSpec("vLLM"), TermSpec("Grafana", hotword=False)],
        count_tokens=lambda text: len(text.split()),
    )

    assert bias.hotwords == "vLLM"
    assert bias.initial_prompt == "Grafana."
    assert bias.dropped == []


HALLUCINATIONS = hallucination_matcher([p for ps in DEFAULT_HALLUCINATIONS.values() for p in ps])


@pytest.mark.parametrize(
    "text",
    [
        "시청해주셔서 감사합니다.",
        " 시청해 주셔서 감사합니다!",
        "MBC 뉴스 김철수입니다.",
        "KBS 뉴스 이영희 기자입니다",
        "Thanks for watching!",
        "thank you for watching.",
        "Subtitles by the Amara.org community",
        "구독과 좋아요 부탁드립니다",
    ],
)
def test_known_hallucination_phrases_are_flagged(text):
    assert HALLUCINATIONS(text)


@pytest.mark.parametrize(
    "text",
    [
        "오늘 회의는 vLLM 서빙 구조에 대해 이야기합니다.",
        "감사합니다, 다음 안건으로 넘어가죠.",
        "MBC 뉴스를 보다가 생각난 건데요, 지연 시간이 문제예요.",
        "Thanks for joining, let's look at the watch list.",
        "We are watching the latency.",
        "",
    ],
)
def test_ordinary_sentences_are_not_flagged_as_hallucinations(text):
    assert HALLUCINATIONS(text) is None


@pytest.mark.parametrize(
    ("text", "looping"),
    [
        ("네 네 네 네 네", True),
        ("the the the the the", True),
        ("I think that I think that I think that I think that", True),
        ("ㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋㅋ", True),
        ("네 네 알겠습니다", False),
        ("we scaled it again and again", False),
        ("쿠버네티스 클러스터를 다시 배포했습니다", False),
    ],
)
def test_repetition_loops_are_told_from_ordinary_repetition(text, looping):
    assert is_repetition_loop(text) is looping


def test_segment_flags_cover_confidence_no_speech_compression_and_speech_overlap():
    segment = {
        "start": 10.0,
        "end": 12.0,
        "text": " 시청해주셔서 감사합니다.",
        "avg_logprob": -1.5,
        "no_speech_prob": 0.9,
        "compression_ratio": 2.8,
    }

    flags = segment_flags(segment, speech=[(0.0, 9.5)], hallucination=HALLUCINATIONS)

    assert flags == [
        "low_confidence",
        "no_speech",
        "high_compression",
        "known_hallucination",
        "outside_speech",
    ]
    good = {
        "start": 1.0,
        "end": 3.0,
        "text": " vLLM 으로 서빙해요",
        "avg_logprob": -0.2,
        "no_speech_prob": 0.01,
        "compression_ratio": 1.1,
    }
    assert segment_flags(good, speech=[(0.5, 9.5)], hallucination=HALLUCINATIONS) == []


def test_metrics_use_the_documented_normaliser():
    assert normalise("  vLLM, 쓰면 — 성능 대박!! ") == "vllm 쓰면 성능 대박"
    assert wer("the API is fast", "the api is fast.") == 0.0
    assert wer("a b c d", "a x c") == pytest.approx(0.5)
    assert cer("성능 대박", "성능대박") == 0.0
    assert cer("성능대박", "성농대박") == pytest.approx(0.25)


def test_term_preservation_is_verbatim_and_counts_each_occurrence():
    reference = "vLLM 으로 API 를 서빙하고 vLLM 을 쿠버네티스에 올렸다"
    assert term_preservation(reference, reference, ["vLLM", "API"]) == 1.0
    assert term_preservation(
        reference, "vllm 으로 API 를 서빙하고 vLLM 을", ["vLLM", "API"]
    ) == pytest.approx(2 / 3)
    assert term_preservation("아무 용어 없음", "아무 용어 없음", ["vLLM"]) is None


def test_the_metric_module_has_no_django_dependency():
    source = (Path(__file__).resolve().parents[2] / "glossary" / "metrics.py").read_text()
    assert "django" not in source
