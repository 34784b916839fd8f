#!/usr/bin/env python
"""What the notes task costs beyond the LLM's own time, on the 6.3-minute term file.

The file: every term sentence (../shared/speech/terms_en.jsonl and the four sets in
benchmarks/speech/, 61 sentences) spoken by espeak-ng and joined with 0.6 s of silence, as
``manage.py bench`` builds it. On the production topology (the e2e tests' Stack: daphne, one
batch worker, the notes queue's worker ``qcluster --name notes``, on PostgreSQL) with the real
tiny.en when the realmodel extra is installed (else the random-weight test model), a job is
submitted with ``meeting_notes`` and ``keywords``; then ``POST /v1/jobs/{id}/notes`` asks
for the notes again ``--rounds`` times. The LLM is the tests' loopback OpenAI-compatible
server, which answers at once; the time it spends on each request is measured inside it.

Per note it prints the queue wait (POST → the worker starts it), the run (start → end, from
the database), the LLM's time and **the overhead: run − LLM time** (reading the stored
result, rendering the prompt, masking, the HTTP round trips, validating, storing, the
event). Needs PostgreSQL on 127.0.0.1:5432, espeak-ng and ../shared/speech.

    .venv/bin/python benchmarks/notes_overhead.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from engine_memory import REPO_ROOT, django_ready

SPEECH_SETS = [
    REPO_ROOT.parent / "shared" / "speech" / "terms_en.jsonl",
    *sorted((REPO_ROOT / "benchmarks" / "speech").glob("terms_en_*.jsonl")),
]


def term_file(tmp: Path) -> tuple[Path, float]:
    """The five sets spoken and joined into one WAV; its path and length in seconds."""
    import numpy as np

    from tests.media import write_wav
    from transcription.bench.synthesize import speech_synthesize
    from transcription.engine.audio import decode_all

    pieces = []
    for number, lines in enumerate(SPEECH_SETS):
        manifest = speech_synthesize(lines=lines, out=tmp / f"set{number}")
        for line in manifest.read_text().splitlines():
            pieces += [decode_all(manifest.parent / json.loads(line)["audio"]), np.zeros(9600)]
    audio = np.concatenate(pieces).astype("float32")
    return write_wav(tmp / "terms.wav", audio), len(audio) / 16000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="notes asked again")
    args = parser.parse_args()
    if not all(path.is_file() for path in SPEECH_SETS):
        sys.exit(f"The term sentences are not all there: {SPEECH_SETS}")
    django_ready()
    from tests.e2e.stack import Stack
    from tests.llm import FakeLLM
    from tests.realmodel import real_model_dir
    from transcription.engine.testmodel import build_test_model

    tmp = Path(tempfile.mkdtemp(prefix="scribe-bench-notes-"))
    wav, seconds = term_file(tmp)
    real = real_model_dir()
    model = real or build_test_model(tmp / "tiny", size="tiny")
    model_name = "tiny.en (the realmodel extra)" if real else "the random-weight test model"
    spent: list[tuple[float, float]] = []  # (start, end) of each answer, inside the LLM
    lock = threading.Lock()

    class TimedLLM(FakeLLM):
        def respond(self, body):
            start = time.time()
            answer = super().respond(body)
            with lock:
                spent.append((start, time.time()))
            return answer

    with (
        TimedLLM() as llm,
        Stack(
            tmp / "stack",
            model,
            notes_workers=True,
            SCRIBE_WORKERS="1",
            SCRIBE_CPU_THREADS="2",
            SCRIBE_LLM_BASE_URL=llm.base_url,
        ) as stack,
        stack.client() as client,
    ):
        with wav.open("rb") as handle:
            options = {"language": "en", "notes": {"template": "meeting_notes"}, "keywords": True}
            job_id = client.post(
                "/v1/jobs",
                files={"file": ("terms.wav", handle)},
                data={"options": json.dumps(options)},
                timeout=120,
            ).json()["job_id"]
        ended(client, job_id, lambda j: j["status"] == "completed", 1800)
        ended(client, job_id, lambda j: j["notes"]["meeting_notes"]["status"] != "pending", 300)
        ended(client, job_id, lambda j: j["keywords"]["status"] != "pending", 300)
        text = client.get(f"/v1/jobs/{job_id}/result?format=txt").text
        rows = [
            note_times(stack, job_id, "keywords", spent),
            note_times(stack, job_id, "meeting_notes", spent),
        ]
        for _ in range(args.rounds):
            asked = time.time()
            client.post(f"/v1/jobs/{job_id}/notes", json={"template": "meeting_notes"})
            time.sleep(0.05)
            ended(client, job_id, lambda j: j["notes"]["meeting_notes"]["status"] != "pending", 300)
            rows.append({**note_times(stack, job_id, "meeting_notes", spent), "asked": asked})
    print(
        f"file: {seconds / 60:.1f} min, {len(SPEECH_SETS)} sets; {model_name}; "
        f"transcript {len(text)} characters, {len(text.split())} words"
    )
    print("note            queue_s  run_s   llm_s   overhead_s  requests")
    for row in rows:
        queue = f"{row['started'] - row['asked']:7.3f}" if "asked" in row else "      -"
        print(
            f"{row['name']:<15} {queue}  {row['run']:6.3f}  {row['llm']:6.3f}  "
            f"{row['run'] - row['llm']:10.3f}  {row['requests']}"
        )
    again = [r["run"] - r["llm"] for r in rows[2:]]
    print(
        f"overhead of a meeting_notes run, median of {len(again)}: "
        f"{statistics.median(again) * 1000:.0f} ms (max {max(again) * 1000:.0f} ms)"
    )
    return 0


def ended(client, job_id: str, done, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if done(client.get(f"/v1/jobs/{job_id}").json()):
            return
        time.sleep(0.1)
    sys.exit(f"timed out waiting for job {job_id}")


def note_times(stack, job_id: str, name: str, spent) -> dict:
    """A note's run from the database, and the LLM's time within it."""
    kind, slug = ("keywords", "") if name == "keywords" else ("notes", name)
    [(started, finished)] = stack.sql(
        "SELECT started_at, finished_at FROM notes_note WHERE job_id = %s AND kind = %s "
        "AND template_slug = %s",
        job_id,
        kind,
        slug,
    )
    start, end = started.timestamp(), finished.timestamp()
    inside = [(a, b) for a, b in spent if start <= a <= end]
    llm = sum(b - a for a, b in inside)
    return {"name": name, "started": start, "run": end - start, "llm": llm, "requests": len(inside)}


if __name__ == "__main__":
    sys.exit(main())
