"""User text through the glossary's edges: the CSV import and ``/v1/text/correct``, in
process, with adversarial glossaries, rules and hallucination phrases. None answers a 500
or raises anything but the error it documents."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from rest_framework.test import APIClient

from accounts.models import Owner
from accounts.services import api_key_create
from glossary.csv_io import HEADER, import_terms, terms_from_csv
from glossary.models import Glossary, HallucinationPhrase, Rule
from glossary.serializers import TermSerializer
from tests.glossary.unicode_text import (
    ADVERSARIAL_TERMS,
    CHARACTERS,
    FEW,
    PROPERTY,
    long_text,
    term_text,
    text,
    timed,
)

pytestmark = pytest.mark.django_db

# --- the CSV import ----------------------------------------------------------------------

cell = st.one_of(term_text, st.text(max_size=8), st.sampled_from(["", "1", "-3", "١٢", "2" * 12]))
rows = st.lists(st.lists(cell, min_size=1, max_size=5), max_size=5)


def _csv(header: list[str], body: list[list[str]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(body)
    return out.getvalue()


csv_text = st.one_of(
    st.builds(_csv, st.just(HEADER), rows),
    st.builds(_csv, st.lists(st.sampled_from([*HEADER, "glossary", ""]), max_size=5), rows),
    st.text(alphabet=CHARACTERS + ",|\"'", max_size=200).map(lambda body: "canonical\n" + body),
    text,
)


@PROPERTY
@given(csv_text)
@example("canonical\nab\rc\n")  # a carriage return alone ends a line
@example("canonical\n" + "a" * 200_000 + "\n")  # a field over the csv module's limit
@example("canonical\nab\x00c\n")  # PostgreSQL stores no NUL
@example("canonical\n" + "a" * 101 + "\n")  # the column holds 100 characters
@example("canonical,priority\nvLLM,99999999999\n")  # an integer column holds 32 bits
def test_a_csv_import_reads_any_text_or_names_the_bad_line(written):
    try:
        parsed = terms_from_csv(written)
    except ValueError as exc:
        assert str(exc), "an empty message helps nobody"
        return
    for term in parsed:
        assert TermSerializer(data=term).is_valid(), "each row as the API would take it"


@FEW
@given(st.lists(st.sampled_from(ADVERSARIAL_TERMS), min_size=1, max_size=8, unique=True))
def test_terms_exported_as_csv_import_back_as_they_were(canonicals):
    glossary = Glossary.objects.create(owner=_owner(), name=f"g{Glossary.objects.count()}")
    variants = {c: [f"{c}s"[:100], c.upper()[:100]] for c in canonicals}
    written = _csv(HEADER, [[c, "|".join(variants[c]), "false", "3"] for c in canonicals])

    assert import_terms(glossary, written) == len(canonicals)

    stored = {t.canonical: (t.variants, t.hotword, t.priority) for t in glossary.terms.all()}
    assert stored == {
        c.strip(): ([v.strip() for v in variants[c] if v.strip()], False, 3) for c in canonicals
    }


def _owner() -> Owner:
    return Owner.objects.get_or_create(name="platform-team")[0]


# --- /v1/text/correct --------------------------------------------------------------------


@pytest.fixture
def editor(job_settings) -> tuple[APIClient, int]:
    """A caller with a glossary of adversarial terms, and adversarial rules and phrases."""
    job_settings.SCRIBE_RATE_LIMIT = None  # more requests than a minute allows one key
    _, secret = api_key_create(owner_name="platform-team", scopes=["glossary"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    terms = [
        {"canonical": c.strip(), "variants": [c.upper().strip(), f"{c}{c}"[:100]]}
        for c in ADVERSARIAL_TERMS
        if c.strip()
    ]
    created = api.post("/v1/glossaries", {"name": "adversarial", "terms": terms}, format="json")
    assert created.status_code == 201, created.content
    for order, (kind, pattern, replacement) in enumerate(
        [
            ("regex", r"(\d+)\s*기가", r"\1GB"),
            ("regex", r"(?P<word>\w+)-\1", r"\g<word>"),
            ("acronym", "gpu", r"G\PU"),
            ("literal", "①", "1"),
        ]
    ):
        rule = Rule(kind=kind, pattern=pattern, replacement=replacement, order=order, enabled=True)
        rule.full_clean()
        rule.save()
    for phrase in ["a…b…c…d…e", "…ㅋㅋ…", "①…"]:
        HallucinationPhrase.objects.get_or_create(text=phrase)
    return api, created.json()["id"]


def _corrected(editor, said: str, mode: str):
    api, glossary_id = editor
    response = api.post(
        "/v1/text/correct",
        {"text": said, "language": "ko", "glossary_id": glossary_id, "mode": mode},
        format="json",
    )
    assert response.status_code in (200, 400), (response.status_code, response.content)
    body = response.json()
    if response.status_code == 400:
        assert body["error"]["code"] == "invalid"
        assert set(body["error"]["fields"]) == {"text"}
        assert "\x00" in said or not said, "only a NUL or nothing at all is refused"
        return None
    assert body["raw_text"] == said
    assert isinstance(body["text"], str)
    assert isinstance(body["suppressed"], bool)
    if body["suppressed"]:
        assert body["text"] == said, "a suppressed text is shown as given"
    return body


@PROPERTY
@given(text, st.sampled_from(["none", "glossary", "rules"]))
@example("a b c d e", "rules")
@example("ÉÉ test ＡＢ", "glossary")
@example("시청해주셔서 감사합니다.", "rules")
@example("씨오투 배출량과 H₂O 10 m²", "rules")
def test_text_correct_answers_any_text(editor, said, mode):
    _corrected(editor, said, mode)


@FEW
@given(long_text)
def test_text_correct_answers_ten_thousand_characters(editor, said):
    timed(_corrected, editor, said, "rules")


api_term = st.fixed_dictionaries(
    {"canonical": term_text, "variants": st.lists(term_text, max_size=3)},
    optional={"hotword": st.booleans(), "priority": st.integers(-(2**40), 2**40)},
)


@PROPERTY
@given(st.lists(api_term, max_size=5), text)
@example([{"canonical": "Straße"}, {"canonical": "STRASSE"}], "strasse")
@example([{"canonical": "a\x00"}], "a")
@example([{"canonical": "x" * 101}], "x")
@example([{"canonical": " vLLM"}, {"canonical": "vLLM "}], "vllm")
def test_any_glossary_is_stored_or_refused_and_then_corrects_any_text(editor, terms, said):
    api, _ = editor
    name = f"g{Glossary.objects.count()}"
    created = api.post("/v1/glossaries", {"name": name, "terms": terms}, format="json")
    assert created.status_code in (201, 400, 409), (created.status_code, created.content)
    if created.status_code != 201:
        assert created.json()["error"]["message"]
        return
    _corrected((api, created.json()["id"]), said, "rules")
