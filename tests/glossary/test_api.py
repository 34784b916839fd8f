from __future__ import annotations

import json

import pytest
from rest_framework.test import APIClient

from accounts.models import Owner
from accounts.services import api_key_create
from glossary.models import Glossary, Rule
from glossary.services import job_bias, job_hotword_choice, job_result_post_process
from tests.conftest import result_json, shared_clip
from transcription import runner
from transcription.models import Job

pytestmark = pytest.mark.django_db(transaction=True)

GLOSSARY = {
    "name": "platform",
    "description": "infra terms",
    "terms": [
        {"canonical": "vLLM", "variants": ["브이엘엘엠"], "hotword": True, "priority": 10},
        {"canonical": "Kubernetes", "variants": ["쿠버네티스"], "hotword": True},
        {"canonical": "FastAPI", "variants": ["패스트 API"], "hotword": False},
    ],
}


def client(scopes, owner="platform-team") -> APIClient:
    _, secret = api_key_create(owner_name=owner, scopes=scopes)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return api


@pytest.fixture
def editor(job_settings):
    return client(["glossary", "transcribe"])


def test_glossaries_are_created_read_updated_and_deleted_with_nested_terms(editor):
    created = editor.post("/v1/glossaries", GLOSSARY, format="json")
    assert created.status_code == 201, created.json()
    gid = created.json()["id"]

    got = editor.get(f"/v1/glossaries/{gid}").json()
    assert [t["canonical"] for t in got["terms"]] == ["vLLM", "Kubernetes", "FastAPI"]
    assert got["terms"][0] == {
        "canonical": "vLLM",
        "variants": ["브이엘엘엠"],
        "hotword": True,
        "priority": 10,
    }

    updated = editor.patch(
        f"/v1/glossaries/{gid}",
        {"terms": [{"canonical": "Grafana", "variants": ["그라파나"]}]},
        format="json",
    ).json()
    assert [t["canonical"] for t in updated["terms"]] == ["Grafana"]
    assert [g["name"] for g in editor.get("/v1/glossaries").json()["results"]] == ["platform"]
    assert editor.delete(f"/v1/glossaries/{gid}").status_code == 204
    assert not Glossary.objects.exists()


def test_glossaries_are_owned_like_jobs(editor):
    gid = editor.post("/v1/glossaries", GLOSSARY, format="json").json()["id"]
    teammate = client(["glossary"])
    outsider = client(["glossary"], owner="search-team")

    assert teammate.get(f"/v1/glossaries/{gid}").status_code == 200
    assert outsider.get(f"/v1/glossaries/{gid}").status_code == 404
    assert outsider.delete(f"/v1/glossaries/{gid}").status_code == 404
    assert outsider.get("/v1/glossaries").json()["results"] == []
    assert client(["transcribe"]).get("/v1/glossaries").status_code == 403
    assert APIClient().get("/v1/glossaries").status_code == 401


def test_bad_glossaries_get_field_errors(editor):
    editor.post("/v1/glossaries", GLOSSARY, format="json")
    twice = {"name": "other", "terms": [{"canonical": "vLLM"}, {"canonical": "vLLM"}]}

    same_name = editor.post("/v1/glossaries", GLOSSARY, format="json")
    repeated = editor.post("/v1/glossaries", twice, format="json")

    assert same_name.status_code == 409  # a conflict with what exists, not a bad field
    assert same_name.json()["error"]["code"] == "name_taken"
    assert "already have a glossary named" in same_name.json()["error"]["message"]
    assert repeated.status_code == 409  # one row per canonical, as one glossary per name
    assert repeated.json()["error"]["code"] == "terms_repeated"
    assert "listed twice: vLLM" in repeated.json()["error"]["message"]


def test_text_correct_shows_what_the_glossary_and_rules_do(editor):
    gid = editor.post("/v1/glossaries", GLOSSARY, format="json").json()["id"]
    Rule.objects.create(
        glossary_id=gid,
        order=1,
        kind="regex",
        pattern=r"(\d+)\s*기가",
        replacement=r"\1GB",
        enabled=True,
    )
    Rule.objects.create(order=2, kind="acronym", pattern="GPU", enabled=True)  # global
    Rule.objects.create(order=3, kind="literal", pattern="서빙", replacement="XX")  # disabled

    body = editor.post(
        "/v1/text/correct",
        {
            "text": "브이엘엘엠 서빙할 때 gpu 메모리 80 기가 써요",
            "language": "ko",
            "glossary_id": gid,
            "mode": "rules",
        },
        format="json",
    ).json()

    assert body["raw_text"] == "브이엘엘엠 서빙할 때 gpu 메모리 80 기가 써요"
    assert body["text"] == "vLLM 서빙할 때 GPU 메모리 80GB 써요"
    stages = {s["name"]: s["changes"] for s in body["stages"]}
    assert stages["glossary"][0]["diff"] == [
        {"op": "replace", "before": "브이엘엘엠", "after": "vLLM"}
    ]
    assert stages["rules"][0]["after"] == "vLLM 서빙할 때 GPU 메모리 80GB 써요"
    assert body["flags"] == []
    other = client(["glossary"], owner="search-team")
    refused = other.post("/v1/text/correct", {"text": "x", "glossary_id": gid}, format="json")
    assert refused.status_code == 404
    assert "No glossary of yours" in refused.json()["error"]["message"]


def test_text_correct_shows_a_known_hallucination_flagged_and_suppressed(editor):
    response = editor.post(
        "/v1/text/correct",
        {"text": "시청해주셔서 감사합니다.", "language": "ko", "mode": "rules"},
        format="json",
    )

    assert response.status_code == 200
    body = response.json()
    assert body["text"] == body["raw_text"] == "시청해주셔서 감사합니다."
    assert "known_hallucination" in body["flags"]
    assert body["suppressed"] is True


def test_text_correct_says_kept_text_is_not_suppressed(editor):
    body = editor.post("/v1/text/correct", {"text": "hello there"}, format="json").json()

    assert body["suppressed"] is False


def test_a_glossary_with_sub_and_superscript_digits_corrects_text(editor):
    terms = [
        {"canonical": c, "variants": v} for c, v in (("CO₂", ["씨오투"]), ("H₂O", []), ("m²", []))
    ]
    gid = editor.post("/v1/glossaries", {"name": "chem", "terms": terms}, format="json").json()[
        "id"
    ]

    response = editor.post(
        "/v1/text/correct",
        {"text": "씨오투 배출량과 H₂O 10 m², 2 m", "language": "ko", "glossary_id": gid},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["text"] == "CO₂ 배출량과 H₂O 10 m², 2 m"


def test_a_patched_term_without_its_canonical_spelling_is_refused_naming_the_field(editor):
    gid = editor.post("/v1/glossaries", GLOSSARY, format="json").json()["id"]

    response = editor.patch(
        f"/v1/glossaries/{gid}", {"terms": [{"variants": ["그라파나"]}]}, format="json"
    )

    assert response.status_code == 400
    assert response.json()["error"]["fields"]["terms"] == {
        "0": {"canonical": ["This field is required."]}
    }
    kept = editor.get(f"/v1/glossaries/{gid}").json()["terms"]
    assert [t["canonical"] for t in kept] == ["vLLM", "Kubernetes", "FastAPI"]


def test_a_stored_rule_that_cannot_compile_is_skipped_and_the_others_apply(editor, caplog):
    gid = editor.post("/v1/glossaries", GLOSSARY, format="json").json()["id"]
    # Written before replacements were checked: a group the pattern does not have.
    Rule.objects.create(
        order=1, kind="regex", pattern=r"\bapi\b", replacement=r"\1GB", enabled=True
    )
    Rule.objects.create(order=2, kind="acronym", pattern="GPU", enabled=True)

    response = editor.post(
        "/v1/text/correct",
        {"text": "gpu api", "language": "en", "glossary_id": gid, "mode": "rules"},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json()["text"] == "GPU api"
    assert "skipping the regex rule" in caplog.text


def test_a_job_result_shows_raw_and_corrected_text_stage_diffs_flags_and_bias(editor, job_settings):
    gid = editor.post("/v1/glossaries", GLOSSARY, format="json").json()["id"]
    Rule.objects.create(
        order=1, kind="regex", pattern=r"^(.*)$", replacement=r"\1 [checked]", enabled=True
    )
    with shared_clip("jfk.flac").open("rb") as audio:
        job_id = editor.post(
            "/v1/jobs",
            {
                "file": audio,
                "options": json.dumps(
                    {
                        "glossary_id": gid,
                        # The request's own hotwords reach every window; the glossary's
                        # only where a first pass heard them (never, with random weights).
                        "hotwords": ["Grafana", "vLLM", "Kubernetes"],
                        "word_timestamps": True,
                        "post_correction": {"mode": "rules"},
                    }
                ),
            },
            format="multipart",
        ).json()["job_id"]

    runner.job_process(job_id=job_id)

    result = result_json(editor.get(f"/v1/jobs/{job_id}/result?format=json"))
    segment = result["segments"][0]
    assert segment["raw_text"] != segment["text"]
    assert segment["text"].endswith("[checked]")
    assert isinstance(segment["flags"], list)
    assert all("flags" in w for w in segment["words"])
    stages = result["post_correction"]["stages"]
    assert [s["name"] for s in stages] == ["glossary", "hearings", "soundalike", "rules"]
    assert len(stages[3]["changes"]) == len(result["segments"])
    assert result["bias"]["hotwords"] == "Grafana vLLM Kubernetes"
    assert result["bias"]["initial_prompt"] == "FastAPI."
    assert result["run"]["decoding"]["hotwords_per_window"] == ["Grafana vLLM Kubernetes"]
    # The window's two quick hearings are kept: the first pass and the survey, which was
    # offered every term (the request's hotwords and the glossary's FastAPI is kept out).
    [hearing] = result["run"]["decoding"]["hearings_per_window"]
    assert set(hearing) == {"start", "end", "first_pass", "survey", "checked"}
    assert hearing["start"] == 0.0 and hearing["end"] > 0
    assert isinstance(hearing["first_pass"], str) and isinstance(hearing["survey"], str)
    # What the audio was asked about each segment, scored (may be nothing to ask).
    assert all(isinstance(a["gain"], float) for c in hearing["checked"] for a in c["alternatives"])
    assert result["run"]["decoding"]["initial_prompt"] == "FastAPI."
    srt = editor.get(f"/v1/jobs/{job_id}/result?format=srt").content.decode()
    assert "[checked]" in srt


def test_a_job_may_drop_flagged_segments(editor, job_settings, tone_wav):
    with tone_wav.open("rb") as audio:
        kept = editor.post(
            "/v1/jobs", {"file": audio, "options": json.dumps({"vad": False})}, format="multipart"
        ).json()["job_id"]
    with tone_wav.open("rb") as audio:
        dropped = editor.post(
            "/v1/jobs",
            {"file": audio, "options": json.dumps({"vad": False, "drop_flagged": True})},
            format="multipart",
        ).json()["job_id"]
    runner.job_process(job_id=kept)
    runner.job_process(job_id=dropped)

    full = result_json(editor.get(f"/v1/jobs/{kept}/result"))
    lean = result_json(editor.get(f"/v1/jobs/{dropped}/result"))
    flagged = [s for s in full["segments"] if s["flags"]]
    assert len(lean["segments"]) == len(full["segments"]) - len(flagged)
    assert lean["post_correction"]["dropped_segments"] == len(flagged)


def test_job_options_refuse_another_owners_glossary_and_unconfigured_llm(editor, tone_wav):
    gid = editor.post("/v1/glossaries", GLOSSARY, format="json").json()["id"]
    outsider = client(["transcribe"], owner="search-team")

    with tone_wav.open("rb") as audio:
        foreign = outsider.post(
            "/v1/jobs",
            {"file": audio, "options": json.dumps({"glossary_id": gid})},
            format="multipart",
        ).json()
    with tone_wav.open("rb") as audio:
        llm = editor.post(
            "/v1/jobs",
            {"file": audio, "options": json.dumps({"post_correction": {"mode": "llm"}})},
            format="multipart",
        ).json()

    assert "No glossary of yours" in foreign["error"]["fields"]["options"]["glossary_id"][0]
    assert "not configured" in llm["error"]["fields"]["options"]["post_correction"][0]


def test_a_job_uses_its_glossary_only_while_its_owner_owns_it(editor):
    gid = editor.post("/v1/glossaries", GLOSSARY, format="json").json()["id"]
    job = Job.objects.create(
        owner=Glossary.objects.get(pk=gid).owner,
        options={"glossary_id": gid, "post_correction": {"mode": "glossary"}},
    )
    segment = {"id": 0, "start": 0.0, "end": 2.0, "text": " 브이엘엘엠 서빙", "words": None}
    result = {"language": "ko", "segments": [segment], "speech": [], "run": {}}
    assert job_bias(job, count_tokens=len).hotwords == "vLLM Kubernetes"

    # The glossary changes hands after the job was accepted: the job runs without it.
    Glossary.objects.filter(pk=gid).update(owner=Owner.objects.create(name="search-team"))
    bias = job_bias(job, count_tokens=len)
    processed = job_result_post_process(job, result, bias=bias)

    assert (bias.hotwords, bias.initial_prompt) == (None, None)
    assert job_hotword_choice(job, count_tokens=len) is None
    assert processed["segments"][0]["text"] == " 브이엘엘엠 서빙"


def test_text_correct_leaves_a_particle_its_syllable_after_a_korean_transliteration(editor):
    canonical_only = {"name": "canonical", "terms": [{"canonical": c} for c in ("vLLM", "Helm")]}
    gid = editor.post("/v1/glossaries", canonical_only, format="json").json()["id"]

    body = editor.post(
        "/v1/text/correct",
        {"text": "브이엘엘엠으로 돌려요, 헬름으로 배포해", "language": "ko", "glossary_id": gid},
        format="json",
    ).json()

    assert body["text"] == "vLLM으로 돌려요, Helm으로 배포해"
