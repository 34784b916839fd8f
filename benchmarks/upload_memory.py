"""The web process's memory during a large upload under daphne (issue 26).

daphne (Twisted underneath) receives a request's whole body — spooled to a temporary file
by Twisted — before the application sees any of it, then queues all of it, in memory, for
the application at once (daphne/http_protocol.py ``process``). So scribe's upload guard
(scribe/upload_guard.py) can refuse an upload only once it has arrived, and a web process
holds about one body's size per upload in flight.

This benchmark sends one upload of ``--mb`` MiB (a streamed multipart body: the client
holds 1 MiB at a time) to daphne on SQLite, samples daphne's RSS every 20 ms, and prints
its baseline and peak, and when the answer came. Twice: under the default upload limit, and
under a limit below the upload (``--limit-mb``), where the refusal is timed against the
end of the body.

    .venv/bin/python benchmarks/upload_memory.py [--mb 1024] [--limit-mb 100]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.e2e.stack import api_key, sqlite_daphne  # noqa: E402

CHUNK = 1024 * 1024
BOUNDARY = "scribe-upload-benchmark"


def daphne_process(port: int) -> psutil.Process:
    for process in psutil.process_iter(["cmdline"]):
        cmdline = process.info["cmdline"] or []
        if "daphne" in " ".join(cmdline) and str(port) in cmdline:
            return process
    raise RuntimeError(f"no daphne process serves port {port}")


class Sampler(threading.Thread):
    def __init__(self, process: psutil.Process) -> None:
        super().__init__(daemon=True)
        self.process, self.peak, self.running = process, 0, True

    def run(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)


def upload_once(port: int, key: str, mib: int) -> dict:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.wav"'
        "\r\nContent-Type: audio/wav\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    sent = {"bytes": 0, "done_at": None}
    started = time.monotonic()

    def body():
        yield head
        block = b"\0" * CHUNK
        for _ in range(mib):
            sent["bytes"] += CHUNK
            yield block
        sent["done_at"] = time.monotonic() - started
        yield tail

    process = daphne_process(port)
    baseline = process.memory_info().rss
    sampler = Sampler(process)
    sampler.start()
    with httpx.Client(timeout=600) as client:
        response = client.post(
            f"http://127.0.0.1:{port}/v1/jobs",
            content=body(),
            headers={
                "Authorization": f"Bearer {key}",
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                "Content-Length": str(len(head) + mib * CHUNK + len(tail)),
            },
        )
    answered = time.monotonic() - started
    time.sleep(0.5)
    sampler.running = False
    sampler.join()
    return {
        "status": response.status_code,
        "code": (response.json().get("error") or {}).get("code")
        if response.headers.get("content-type", "").startswith("application/json")
        else None,
        "sent_mib": sent["bytes"] // CHUNK,
        "body_sent_s": round(sent["done_at"], 2) if sent["done_at"] else None,
        "answered_s": round(answered, 2),
        "baseline_rss_mib": round(baseline / CHUNK),
        "peak_rss_mib": round(sampler.peak / CHUNK),
        "growth_mib": round((sampler.peak - baseline) / CHUNK),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=1024, help="upload size in MiB")
    parser.add_argument("--limit-mb", type=int, default=100, help="the refused run's limit")
    args = parser.parse_args()
    results = {}
    for name, limit in (("under the limit", args.mb + 64), ("over the limit", args.limit_mb)):
        with tempfile.TemporaryDirectory() as tmp:
            served = sqlite_daphne(Path(tmp), SCRIBE_MAX_UPLOAD_MB=str(limit), TMPDIR=tmp)
            with served as (port, environ):
                results[name] = upload_once(port, api_key(environ, "transcribe"), args.mb)
        r = results[name]
        print(
            f"{name} (SCRIBE_MAX_UPLOAD_MB={limit}): {args.mb} MiB sent in {r['body_sent_s']} s, "
            f"answered {r['status']} {r['code']} at {r['answered_s']} s; daphne RSS "
            f"{r['baseline_rss_mib']} → peak {r['peak_rss_mib']} MiB (+{r['growth_mib']} MiB)"
        )
    print(json.dumps({"mib": args.mb, **results}))


if __name__ == "__main__":
    main()
