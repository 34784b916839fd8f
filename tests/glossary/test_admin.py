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
        "canonical,variants,hotword,priority",
        "vLLM,브이엘엘엠|브이 엘엘엠,true,10",
        "Grafana,그라파나,false,0",
    ]


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


def test_the_hallucination_list_is_seeded_and_editable(operator):
    assert HallucinationPhrase.objects.filter(text="시청해주셔서 감사합니다").exists()
    assert operator.get("/admin/glossary/hallucinationphrase/").status_code == 200
