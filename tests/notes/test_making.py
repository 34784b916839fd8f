"""From a transcript to notes: long transcripts in parts then merged, keywords counted and
spelled as the glossary's terms, prompts that cannot run code. Against the loopback
OpenAI-compatible server (tests/llm.py) where the LLM is asked."""

from __future__ import annotations

import functools
import json

import pytest
from jsonschema import Draft202012Validator

from notes import making
from notes.prompting import PromptError, prompt_check, prompt_render
from notes.shipped import MEETING_NOTES
from notes.structured import structured_answer
from scribe.llm import LLMConfig
from tests.llm import FakeLLM

TEMPLATE = making.Template(
    "meeting_notes",
    "Meeting notes",
    "",
    MEETING_NOTES["schema"],
    MEETING_NOTES["prompt"],
)


def asking(llm: FakeLLM, audited: list) -> making.Ask:
    config = LLMConfig(
        base_url=llm.base_url, model="local", api_key="", allowed_hosts=("127.0.0.1",)
    )
    return functools.partial(
        structured_answer,
        config=config,
        audit=lambda *record: audited.append(record),
        attempts=2,
    )


def lines(count: int, words: str = "Kubernetes 클러스터 업그레이드 일정을 논의했습니다") -> tuple:
    return tuple(making.Line(i * 5.0, i * 5.0 + 4, f"{words} {i}") for i in range(count))


def test_a_transcript_over_the_context_budget_is_made_in_parts_then_merged():
    transcript = making.Transcript(lines(400), "ko", 2000.0)
    audited: list = []
    with FakeLLM() as llm:
        answer = making.notes_make(
            TEMPLATE, transcript, ask=asking(llm, audited), budget=making.Budget(4096)
        )
    parts_sent = [r for r in llm.requests if "Transcript (" in r["body"]["messages"][1]["content"]]
    merges = [r for r in llm.requests if "consecutive parts" in r["body"]["messages"][1]["content"]]
    assert len(parts_sent) >= 3 and merges, (len(parts_sent), len(merges))
    for request in parts_sent:  # every part fits the budget with the prompt and the answer
        sent = sum(making.estimate_tokens(m["content"]) for m in request["body"]["messages"])
        assert sent <= 4096 - making.Budget(4096).answer_tokens
    assert not list(Draft202012Validator(TEMPLATE.schema).iter_errors(answer.data))
    assert answer.attempts == len(llm.requests)  # every answer counted
    # The parts cover the transcript, each line once, in order.
    said = "\n".join(r["body"]["messages"][1]["content"] for r in parts_sent)
    positions = [said.index(f"논의했습니다 {i}\n") for i in range(399)]
    assert positions == sorted(positions)
    assert "in Korean" in parts_sent[0]["body"]["messages"][1]["content"]


def test_a_short_transcript_is_one_request_in_the_notes_language():
    transcript = making.Transcript(lines(3), "en", 15.0)
    english = making.Template(
        "meeting_notes", "Meeting notes", "en", TEMPLATE.schema, TEMPLATE.prompt
    )
    with FakeLLM() as llm:
        making.notes_make(english, transcript, ask=asking(llm, []), budget=making.Budget(8192))
    assert len(llm.requests) == 1
    assert "in English" in llm.requests[0]["body"]["messages"][1]["content"]


def test_keywords_take_the_glossary_spelling_and_are_counted_where_they_were_said():
    said = (
        making.Line(0.0, 4.0, "쿠버네티스 클러스터를 올리고"),
        making.Line(4.0, 8.0, "vllm 서빙은 Kubernetes 위에서"),
        making.Line(8.0, 12.0, "Seoul office 에서 vLLM 을 씁니다"),
    )
    found = [
        {"text": "kubernetes", "category": "technology"},
        {"text": "VLLM", "category": "technology"},
        {"text": "Seoul", "category": "place"},
        {"text": "Kubernetes", "category": "product"},  # named twice: the first category
        {"text": "Busan", "category": "place"},  # never said
    ]
    spellings = {"Kubernetes": ("쿠버네티스",), "vLLM": ()}

    keywords = making.keywords_counted(found, said, spellings)

    assert keywords == [
        {"text": "Kubernetes", "category": "technology", "count": 2, "first_seen": 0.0},
        {"text": "vLLM", "category": "technology", "count": 2, "first_seen": 4.0},
        {"text": "Seoul", "category": "place", "count": 1, "first_seen": 8.0},
        {"text": "Busan", "category": "place", "count": 0, "first_seen": None},
    ]


def test_the_email_addresses_sent_are_masked_and_put_back_in_the_answer():
    transcript = making.Transcript(
        (making.Line(0, 3, "Mail the plan to kim.minsu@example.com by Friday"),), "en", 3.0
    )
    echo = lambda body: {  # noqa: E731 - the answer quotes what it was sent
        **{k: [] for k in ("decisions", "action_items", "open_questions")},
        "summary": body["messages"][1]["content"].split("\n")[-1],
        "tags": ["plan"],
    }
    with FakeLLM(answer=echo) as llm:
        answer = making.notes_make(
            TEMPLATE, transcript, ask=asking(llm, []), budget=making.Budget(8192)
        )
    assert "kim.minsu@example.com" not in json.dumps(llm.requests)
    assert "kim.minsu@example.com" in answer.data["summary"]


@pytest.mark.parametrize(
    "prompt",
    [
        "{{ transcript.__class__.__mro__[1].__subclasses__() }}",
        "{{ ''.__class__.__base__.__subclasses__() }} {{ transcript }}",
        "{% for c in transcript.__class__.__mro__ %}{{ c }}{% endfor %}",
    ],
)
def test_a_prompt_cannot_reach_python_internals(prompt):
    with pytest.raises(PromptError):
        prompt_render(prompt, {"transcript": "text"})


def test_a_prompt_must_use_the_transcript_and_only_names_it_is_given():
    prompt_check("Notes of {{ transcript }} in {{ notes_language_name }}")
    with pytest.raises(PromptError, match="never uses the transcript"):
        prompt_check("Summarise the meeting in {{ language_name }}.")
    with pytest.raises(PromptError, match="attendees"):
        prompt_check("{{ transcript }} with {{ attendees }}")
    with pytest.raises(PromptError, match="not a valid template"):
        prompt_check("{{ transcript ")
