from __future__ import annotations

import io

import pytest
from django.contrib.auth.models import User

from accounts.models import Owner
from glossary.models import Glossary, HallucinationPhrase, Rule, Term

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client):
    client.force_login(User.objects.create_superuser("op", "op@example.com", "pw-tests-only"))
    return client


@pytest.fixture
def glossary():
    return Glossary.objects.create(owner=Owner.objects.create(name="platform"), name="infra")


def test_terms_are_imported_from_and_exported_to_csv(operator, glossary):
    Term.objects.create(glossary=glossary, canonical="vLLM", variants=["old"], priority=1)
    upload = io.BytesIO(
        "canonical,variants,hotword,priority\n"
        "vLLM,브이엘엘엠|브이 엘엘엠,true,10\n"
        "Grafana,그라파나,false,\n".encode()
    )
    upload.name = "terms.csv"

    response = operator.post(
        "/admin/glossary/glossary/import-csv/", {"glossary": glossary.pk, "file": upload}
    )

    assert response.status_code == 302
    vllm = Term.objects.get(glossary=glossary, canonical="vLLM")
    assert (vllm.variants, vllm.priority) == (["브이엘엘엠", "브이 엘엘엠"], 10)
    assert Term.objects.get(canonical="Grafana").hotword is False
    exported = operator.post(
        "/admin/glossary/glossary/", {"action": "export_csv", "_selected_action": [glossary.pk]}
    )
    assert exported["Content-Type"].startswith("text/csv")
    assert exported.content.decode().splitlines() == [
        "glossary,canonical,variants,hotword,priority",
        "infra (platform),vLLM,브이엘엘엠|브이 엘엘엠,true,10",
        "infra (platform),Grafana,그라파나,false,0",
    ]


def test_an_export_of_several_glossaries_names_each_terms_glossary_and_imports_back(
    operator, glossary
):
    other = Glossary.objects.create(owner=glossary.owner, name="media")
    Term.objects.create(glossary=glossary, canonical="vLLM", variants=["브이엘엘엠"], priority=5)
    Term.objects.create(glossary=other, canonical="HLS", variants=["에이치엘에스"])

    exported = operator.post(
        "/admin/glossary/glossary/",
        {"action": "export_csv", "_selected_action": [glossary.pk, other.pk]},
    ).content

    assert exported.decode().splitlines() == [
        "glossary,canonical,variants,hotword,priority",
        "infra (platform),vLLM,브이엘엘엠,true,5",
        "media (platform),HLS,에이치엘에스,true,0",
    ]
    copy = Glossary.objects.create(owner=glossary.owner, name="copy")
    upload = io.BytesIO(exported)
    upload.name = "glossary-terms.csv"
    response = operator.post(
        "/admin/glossary/glossary/import-csv/", {"glossary": copy.pk, "file": upload}
    )
    assert response.status_code == 302
    assert sorted(copy.terms.values_list("canonical", "variants")) == [
        ("HLS", ["에이치엘에스"]),
        ("vLLM", ["브이엘엘엠"]),
    ]


def glossary_change_form(glossary: Glossary, variants: str) -> dict:
    return {
        "owner": glossary.owner.pk,
        "name": glossary.name,
        "description": "",
        "terms-TOTAL_FORMS": "1",
        "terms-INITIAL_FORMS": "0",
        "terms-MIN_NUM_FORMS": "0",
        "terms-MAX_NUM_FORMS": "1000",
        "terms-0-canonical": "vLLM",
        "terms-0-variants": variants,
        "terms-0-hotword": "on",
        "terms-0-priority": "0",
    }


def test_term_variants_are_typed_one_per_line_or_separated_by_commas(operator, glossary):
    url = f"/admin/glossary/glossary/{glossary.pk}/change/"

    response = operator.post(
        url, glossary_change_form(glossary, "브이엘엘엠, 브이 엘엘엠\nv llm\n")
    )

    assert response.status_code == 302
    term = Term.objects.get(glossary=glossary)
    assert term.variants == ["브이엘엘엠", "브이 엘엘엠", "v llm"]
    page = operator.get(url).content.decode()
    assert "브이엘엘엠\n브이 엘엘엠\nv llm</textarea>" in page


def test_a_bad_csv_line_is_reported_and_nothing_is_imported(operator, glossary):
    upload = io.BytesIO(b"canonical,variants,hotword,priority\nvLLM,,true,high\n")
    upload.name = "terms.csv"

    response = operator.post(
        "/admin/glossary/glossary/import-csv/", {"glossary": glossary.pk, "file": upload}
    )

    assert response.status_code == 200
    assert "Line 2: priority must be a whole number." in response.content.decode()
    assert not Term.objects.exists()


def test_a_rule_is_tried_on_sample_text_in_the_admin_before_it_is_enabled(operator):
    rule = Rule.objects.create(
        kind="regex", pattern=r"(\d+)\s*기가", replacement=r"\1GB", sample_text="메모리 141 기가"
    )

    page = operator.get(f"/admin/glossary/rule/{rule.pk}/change/").content.decode()

    assert "메모리 141GB" in page
    assert rule.enabled is False


@pytest.mark.parametrize("replacement", [r"\1GB", r"\g<size>", r"\q"])
def test_a_regex_rule_whose_replacement_names_no_group_of_its_pattern_is_refused(
    operator, replacement
):
    form = {"order": "0", "kind": "regex", "pattern": r"\d+\s*기가", "replacement": replacement}

    response = operator.post("/admin/glossary/rule/add/", form)

    assert response.status_code == 200
    assert "Not a valid replacement for this pattern" in response.content.decode()
    assert not Rule.objects.exists()


def test_the_hallucination_list_is_seeded_and_editable(operator):
    assert HallucinationPhrase.objects.filter(text="시청해주셔서 감사합니다").exists()
    assert operator.get("/admin/glossary/hallucinationphrase/").status_code == 200
