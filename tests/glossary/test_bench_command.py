from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.models import Owner
from glossary.models import Glossary, Term
from tests.conftest import shared_clip

pytestmark = pytest.mark.django_db(transaction=True)

REFERENCE = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)


def test_bench_reports_error_rates_term_preservation_and_speed(tmp_path, model_dir, models_dir):
    manifest = tmp_path / "set.jsonl"
    manifest.write_text(
        json.dumps(
            {"audio": str(shared_clip("jfk.flac")), "reference": REFERENCE, "language": "en"}
        )
        + "\n"
    )
    glossary = Glossary.objects.create(owner=Owner.objects.create(name="o"), name="g")
    Term.objects.create(glossary=glossary, canonical="Americans")
    out = StringIO()

    call_command(
        "bench",
        str(manifest),
        "--model",
        str(model_dir),
        "--glossary",
        str(glossary.pk),
        "--json",
        stdout=out,
    )

    report = json.loads(out.getvalue())
    row = report["files"][0]
    assert row["cer"] >= 0.0 and row["wer"] >= 0.5, "random weights do not say JFK's words"
    assert row["term_preservation"] in (0.0, 1.0)
    assert row["audio_s"] == pytest.approx(11.0, abs=0.01)
    assert report["summary"]["real_time_factor"] == row["real_time_factor"]
    assert report["bias"] == ["Americans"]


def test_bench_refuses_a_bad_manifest_line(tmp_path, models_dir):
    manifest = tmp_path / "set.jsonl"
    manifest.write_text('{"audio": "a.wav"}\n')

    with pytest.raises(CommandError, match="set.jsonl:1"):
        call_command("bench", str(manifest))
