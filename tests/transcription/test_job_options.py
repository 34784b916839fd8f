"""A job's options: one schema for both lanes, parsed once into a frozen JobOptions."""

from __future__ import annotations

import dataclasses
import json

import pytest
from rest_framework.exceptions import ValidationError

from accounts.models import Owner
from glossary.models import Glossary
from scribe.errors import problems_text
from tests.conftest import result_json, shared_clip
from transcription import runner
from transcription.options import LIVE_FIELDS, JobOptions
from transcription.serializers import options_parse

# What every file job stored before JobOptions existed (the serializer's defaults).
STORED_BEFORE = {
    "language": "",
    "model": "batch",
    "timestamps": True,
    "word_timestamps": False,
    "diarize": False,
    "vad": True,
    "drop_flagged": False,
}


def test_a_row_stored_before_the_type_loads_as_the_defaults():
    assert JobOptions.from_stored(STORED_BEFORE) == JobOptions()
    assert JobOptions.from_stored(None) == JobOptions()


def test_a_row_stored_before_keeps_what_it_asked_for():
    options = JobOptions.from_stored(
        {
            **STORED_BEFORE,
            "language": "ko",
            "hotwords": ["vLLM", "API"],
            "post_correction": {"mode": "glossary"},
            "formats": ["srt"],
            "diarize": "channels",
            "callback_url": "https://hooks.example/x",
            "a_field_from_a_later_release": 1,
        }
    )
    assert options.language == "ko" and options.hotwords == ("vLLM", "API")
    assert options.post_correction == "glossary" and options.formats == ("srt",)
    assert options.diarize == "channels" and options.callback_url == "https://hooks.example/x"


def test_a_live_row_stored_before_the_type_loads():
    stored = {
        "language": None,
        "hotwords": [],
        "word_timestamps": True,
        "sample_rate": 48000,
        "encoding": "f32le",
        "glossary_id": None,
    }
    options = JobOptions.from_stored(stored, live=True)
    assert options == JobOptions(
        word_timestamps=True, sample_rate=48000, encoding="f32le", post_correction="rules"
    )


def test_stored_options_read_back_as_they_were():
    options = JobOptions(
        language="en",
        hotwords=("Kennedy",),
        formats=("txt", "json"),
        post_correction="rules",
        temperature=0.3,
        timestamps=False,
    )
    assert JobOptions.from_stored(options.stored()) == options
    assert options.stored()["post_correction"] == {"mode": "rules"}
    assert "encoding" not in options.stored()  # a file job has no live audio fields
    live = JobOptions(language="ko", word_timestamps=False, sample_rate=8000, glossary_id=3)
    assert JobOptions.from_stored(live.stored(live=True), live=True) == live
    assert set(live.stored(live=True)) == set(LIVE_FIELDS)


def test_options_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        JobOptions().language = "ko"  # type: ignore[misc]


@pytest.mark.django_db
class TestOneSchemaForBothLanes:
    def test_a_file_job_keeps_the_rest_defaults(self, owner_key):
        options = options_parse({}, owner=owner_key[0].owner)
        assert options == JobOptions()
        assert options.word_timestamps is False and options.language is None

    def test_a_live_session_hears_words_by_default(self, owner_key):
        options = options_parse({}, owner=owner_key[0].owner, lane="live")
        assert options.word_timestamps is True and options.language is None
        assert options.post_correction == "rules"  # as every live session had before
        assert options.sample_rate == 16000 and options.encoding == "pcm_s16le"

    def test_auto_and_empty_language_mean_detect_on_both_lanes(self, owner_key):
        for lane in ("file", "live"):
            for said in ("auto", "", "AUTO"):
                owner = owner_key[0].owner
                assert options_parse({"language": said}, owner=owner, lane=lane).language is None

    def test_a_live_session_refuses_file_only_options_and_names_them(self, owner_key):
        with pytest.raises(ValidationError) as refused:
            options_parse(
                {"model": "batch", "formats": ["srt"]}, owner=owner_key[0].owner, lane="live"
            )
        assert set(refused.value.detail) == {"formats", "model"}

    def test_a_file_job_refuses_live_audio_options(self, owner_key):
        with pytest.raises(ValidationError) as refused:
            options_parse({"sample_rate": 48000}, owner=owner_key[0].owner)
        assert set(refused.value.detail) == {"sample_rate"}

    def test_a_live_session_may_correct_by_glossary_or_rules_but_not_by_llm(self, owner_key):
        owner = owner_key[0].owner
        for mode in ("none", "glossary", "rules"):
            parsed = options_parse({"post_correction": {"mode": mode}}, owner=owner, lane="live")
            assert parsed.post_correction == mode
        with pytest.raises(ValidationError) as refused:
            options_parse({"post_correction": {"mode": "llm"}}, owner=owner, lane="live")
        assert "hold finals back" in str(refused.value.detail["post_correction"][0])

    def test_both_lanes_share_the_hotword_limits(self, owner_key):
        owner = owner_key[0].owner
        for lane in ("file", "live"):
            with pytest.raises(ValidationError) as refused:
                options_parse({"hotwords": ["x"] * 201}, owner=owner, lane=lane)
            assert "hotwords" in refused.value.detail
            with pytest.raises(ValidationError):
                options_parse({"hotwords": ["x" * 101]}, owner=owner, lane=lane)

    def test_a_glossary_of_someone_else_is_refused_on_both_lanes(self, owner_key):
        outsider = Owner.objects.create(name="outsider")
        theirs = Glossary.objects.create(owner=outsider, name="theirs")
        for lane in ("file", "live"):
            with pytest.raises(ValidationError) as refused:
                options_parse({"glossary_id": theirs.pk}, owner=owner_key[0].owner, lane=lane)
            assert "No glossary of yours" in str(refused.value.detail["glossary_id"][0])

    def test_timed_formats_without_timestamps_are_refused(self, owner_key):
        with pytest.raises(ValidationError) as refused:
            options_parse(
                {"timestamps": False, "formats": ["txt", "srt"]}, owner=owner_key[0].owner
            )
        assert "srt" in str(refused.value.detail["formats"][0])

    def test_without_timestamps_a_job_offers_only_untimed_formats(self, owner_key):
        options = options_parse({"timestamps": False}, owner=owner_key[0].owner)
        assert options.result_formats == ("json", "txt")
        assert JobOptions().result_formats == ("json", "srt", "txt", "vtt")

    def test_one_line_names_every_problem_for_a_websocket_event(self, owner_key):
        with pytest.raises(ValidationError) as refused:
            options_parse(
                {"sample_rate": 12345, "encoding": "mp3", "language": "xx"},
                owner=owner_key[0].owner,
                lane="live",
            )
        line = problems_text(refused.value.detail)
        for problem in ("language: 'xx'", "sample_rate: 12345 Hz", 'encoding: "mp3"'):
            assert problem in line


@pytest.mark.django_db(transaction=True)
class TestTimestampsOption:
    """``"timestamps": false`` leaves times out of json; srt and vtt need them."""

    def upload(self, api, options):
        with shared_clip("jfk.flac").open("rb") as handle:
            data = {"file": handle, "options": json.dumps(options)}
            return api.post("/v1/jobs", data, format="multipart")

    def test_a_job_without_timestamps_serves_json_and_txt_without_times(self, api, job_settings):
        created = self.upload(api, {"language": "en", "timestamps": False})
        assert created.status_code == 202, created.json()
        job_id = created.json()["job_id"]
        runner.job_process(job_id=job_id)

        done = api.get(f"/v1/jobs/{job_id}").json()
        assert set(done["results"]) == {"json", "txt"}
        result = api.get(f"/v1/jobs/{job_id}/result?format=json").json()
        assert result["segments"] and result["text"]
        assert all("start" not in s and "end" not in s for s in result["segments"])
        assert "speech" not in result
        assert api.get(f"/v1/jobs/{job_id}/result?format=txt").status_code == 200
        refused = api.get(f"/v1/jobs/{job_id}/result?format=srt")
        assert refused.status_code == 400
        assert "timestamps" in refused.json()["error"]["fields"]["format"][0]

    def test_a_job_with_timestamps_keeps_its_times(self, api, job_settings):
        created = self.upload(api, {"language": "en"})
        runner.job_process(job_id=created.json()["job_id"])
        result = result_json(api.get(f"/v1/jobs/{created.json()['job_id']}/result?format=json"))
        assert all("start" in s and "end" in s for s in result["segments"])

    def test_timed_formats_without_timestamps_are_a_400(self, api, job_settings):
        refused = self.upload(api, {"timestamps": False, "formats": ["vtt"]})
        assert refused.status_code == 400
        assert "vtt" in refused.json()["error"]["fields"]["options"]["formats"][0]
        refused = self.upload(api, {"timestamps": False, "word_timestamps": True})
        assert "word_timestamps" in refused.json()["error"]["fields"]["options"]
