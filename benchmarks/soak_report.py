"""What ``soak.py`` checks after its load: it waits for every job to end and every callback
to arrive, then compares what the clients saw with what the database and the results hold,
prints the figures with PASS or FAIL, and returns them as one dict."""

from __future__ import annotations

import statistics
import time
from collections import Counter, defaultdict

import httpx
import psycopg
from soak_stack import Receiver, Supervisor

TERMINAL = ("completed", "failed", "cancelled")
RSS_GROWTH_MAX = 0.15
# Error events that end a session (the others, falling_behind and dropping_audio, warn).
ENDING_ERRORS = {
    "worker_lost",
    "session_failed",
    "storage_failed",
    "start_failed",
    "key_revoked",
    "cancelled",
    "frame_too_large",
}


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def drain(soak, receiver: Receiver, database_url: str) -> tuple[list[tuple], float]:
    """Wait until every job has ended and every ended job's callback has arrived (or
    ``--drain-s`` passes); return the job rows and how long it took."""
    started = time.monotonic()
    deadline = started + soak.args.drain_s
    last_note = started
    while True:
        with psycopg.connect(database_url, autocommit=True) as conn:
            jobs = conn.execute(
                "SELECT id::text, status, kind, error_code, options->>'callback_url', "
                "extract(epoch FROM created_at), extract(epoch FROM finished_at) "
                "FROM transcription_job"
            ).fetchall()
        with receiver.lock:
            hooked = {hook.job_id for hook in receiver.hooks}
        running = [j for j in jobs if j[1] not in TERMINAL]
        unhooked = [j for j in jobs if j[1] in TERMINAL and j[4] and j[0] not in hooked]
        now = time.monotonic()
        if (not running and not unhooked) or now > deadline:
            return jobs, now - started
        if now - last_note >= 30:
            last_note = now
            print(
                f"  draining: {len(running)} jobs not ended, {len(unhooked)} callbacks "
                f"not arrived ({now - started:.0f} s)",
                flush=True,
            )
        time.sleep(2)


def finals_check(soak, database_url: str, jobs: list[tuple]) -> dict:
    """Every final a client received must be stored once (its row) and be in its job's
    result once, with the same text."""
    status = {j[0]: j[1] for j in jobs}
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT job_id::text, index, text FROM realtime_streamsegment"
        ).fetchall()
    stored: dict[tuple[str, int], list[str]] = defaultdict(list)
    for job_id, index, text in rows:
        stored[(job_id, index)].append(text.strip())
    figures: Counter = Counter()
    examples: list[str] = []
    headers = {"Authorization": f"Bearer {soak.key}"}
    with httpx.Client(base_url=soak.base_url, headers=headers, timeout=60) as client:
        for session in soak.sessions:
            if session.job_id is None or not session.finals:
                continue
            result: list[dict] = []
            if status.get(session.job_id) == "completed":
                response = client.get(f"/v1/jobs/{session.job_id}/result?format=json")
                if response.status_code == 200:
                    result = response.json()["segments"]
            for index, text, _ in session.finals:
                figures["received"] += 1
                held = stored.get((session.job_id, index), [])
                in_result = [s for s in result if s["id"] == index]
                if not held:
                    figures["not_stored"] += 1
                    examples.append(f"{session.job_id} #{index} not stored: {text!r}")
                elif len(held) > 1:
                    figures["stored_twice"] += 1
                elif held[0] != text:
                    figures["stored_other_text"] += 1
                    examples.append(f"{session.job_id} #{index}: {text!r} vs {held[0]!r}")
                if not in_result:
                    figures["not_in_result"] += 1
                    if held:
                        examples.append(f"{session.job_id} #{index} not in the result")
                elif len(in_result) > 1:
                    figures["twice_in_result"] += 1
                elif in_result[0]["text"].strip() != text:
                    figures["result_other_text"] += 1
    return {
        **{
            k: figures[k]
            for k in (
                "received",
                "not_stored",
                "stored_twice",
                "stored_other_text",
                "not_in_result",
                "twice_in_result",
                "result_other_text",
            )
        },
        "examples": examples[:10],
    }


def jobs_check(soak, jobs: list[tuple]) -> dict:
    known = set(soak.known_ids)
    in_db = {j[0]: j for j in jobs}
    statuses = Counter(j[1] for j in jobs)
    failed = Counter(f"{j[2]}: {j[3]}" for j in jobs if j[1] == "failed")
    uploads = {job_id for _, job_id in soak.uploads}
    latencies: dict[str, list[float]] = {"outside": [], "inside": []}
    for at, job_id in soak.uploads:
        row = in_db.get(job_id)
        if row and row[1] == "completed" and row[6] is not None:
            # By when the server created the job: an upload sent just before a fault may
            # be enqueued during it.
            created = float(row[5]) - soak.wall0
            place = "inside" if any(f.holds(created) for f in soak.faults) else "outside"
            latencies[place].append(float(row[6]) - soak.wall0 - at)
    return {
        "jobs": len(jobs),
        "uploads_accepted": len(uploads),
        "stream_jobs": len([j for j in jobs if j[2] == "stream"]),
        "statuses": dict(statuses),
        "failed": dict(failed),
        "lost": sorted(known - set(in_db)),
        "stuck": sorted(j[0] for j in jobs if j[1] not in TERMINAL),
        "unknown_to_clients": len(set(in_db) - known),
        # Upload to completed, for uploads sent outside and inside the fault windows.
        "upload_latency_s": {
            place: {
                "p50": round(statistics.median(values), 1) if values else None,
                "max": round(max(values), 1) if values else None,
            }
            for place, values in latencies.items()
        },
    }


def webhooks_check(receiver: Receiver, jobs: list[tuple]) -> dict:
    with receiver.lock:
        hooks = list(receiver.hooks)
    by_job = defaultdict(list)
    for hook in hooks:
        by_job[hook.job_id].append(hook)
    expected = [j for j in jobs if j[1] in TERMINAL and j[4]]
    lost = [j[0] for j in expected if j[0] not in by_job]
    wrong = [j[0] for j in expected if j[0] in by_job and by_job[j[0]][-1].status != j[1]]
    deliveries = Counter(hook.delivery for hook in hooks)
    return {
        "expected": len(expected),
        "received": len(hooks),
        "lost": lost,
        "repeated_deliveries": sum(n - 1 for n in deliveries.values() if n > 1),
        "bad_signatures": sum(1 for hook in hooks if not hook.signed),
        "status_differs": wrong,
    }


def http_check(soak) -> dict:
    def window(at: float) -> str:
        return "inside" if any(f.holds(at) for f in soak.faults) else "outside"

    figures: dict[str, Counter] = {"inside": Counter(), "outside": Counter()}
    for at, what, status in soak.http:
        place = figures[window(at)]
        place["requests"] += 1
        if status >= 500:
            place["5xx"] += 1
            place[f"5xx {what} {status}"] += 1
        elif status == 0:
            place["no_answer"] += 1
            place[f"no answer {what}"] += 1
    return {place: dict(counts) for place, counts in figures.items()}


def streams_check(soak) -> dict:
    sessions = soak.sessions
    closes = Counter(str(s.close_code or s.handshake_status) for s in sessions)
    # A final's lag: when it came, less when its end was said (audio starts at `ready`).
    lags = [
        at - (s.ready + s.final_ends[index])
        for s in sessions
        if s.ready is not None
        for index, _, at in s.finals
        if s.final_ends.get(index) is not None
    ]
    interrupted = [s for s in sessions if s.job_id is not None and not s.completed]
    errors = Counter(code for s in sessions for code, _, _ in s.errors)
    reconnected = 0
    for s in interrupted:
        later = [o for o in sessions if o.client == s.client and o.opened > s.opened]
        if any(o.job_id is not None for o in later) or s.ended is None:
            reconnected += 1
    return {
        "sessions": len(sessions),
        "completed": sum(1 for s in sessions if s.completed),
        "interrupted": len(interrupted),
        "told": sum(1 for s in interrupted if told(s)),
        "told_worker_lost": sum(1 for s in interrupted if s.told_worker_lost),
        "dropped_untold": sum(1 for s in interrupted if not told(s)),
        "reconnected": reconnected,
        "refused_or_failed_handshakes": sum(1 for s in sessions if s.job_id is None),
        "close_codes": dict(closes),
        "error_events": dict(errors),
        "audio_s": round(sum(s.audio_s for s in sessions), 1),
        "skipped_audio_s": round(soak.skipped_audio_s, 1),
        "final_lag_p50_s": _percentile(lags, 0.5),
        "final_lag_p95_s": _percentile(lags, 0.95),
    }


def told(session) -> bool:
    """Whether a session that ended early was told why (docs/streaming.md)."""
    return any(code in ENDING_ERRORS for code, _, _ in session.errors)


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def recovery(soak) -> list[dict]:
    """For each fault: when the clients were told, when every stream client had a session
    giving finals again, when uploads were answered again, and when a job sent after the
    fault completed."""
    out = []
    for fault in soak.faults:
        first_final: dict[int, float] = {}
        told: dict[int, float] = {}
        ready: dict[int, float] = {}
        for s in soak.sessions:
            if s.ready is not None and s.opened >= fault.at:
                ready[s.client] = min(ready.get(s.client, s.ready), s.ready)
            for _, _, at in s.finals:
                if at > (fault.back or fault.at) and s.opened >= fault.at - 1:
                    first_final[s.client] = min(first_final.get(s.client, at), at)
            for code, at, _ in s.errors:
                if at >= fault.at and code == "worker_lost":
                    told[s.client] = min(told.get(s.client, at), at)
        answered = [
            at
            for at, what, status in soak.http
            if at >= fault.at and 200 <= status < 500 and what == "upload"
        ]
        out.append(
            {
                "fault": fault.name,
                "at_s": round(fault.at, 1),
                "back_after_s": round(fault.back - fault.at, 1) if fault.back else None,
                "clients_told_after_s": sorted(round(at - fault.at, 1) for at in told.values()),
                "streams_ready_again_after_s": (
                    round(max(ready.values()) - fault.at, 1) if len(ready) == 4 else None
                ),
                "streams_final_again_after_s": (
                    round(max(first_final.values()) - fault.at, 1)
                    if len(first_final) == 4
                    else None
                ),
                "streams_final_again": len(first_final),
                "uploads_answered_after_s": round(min(answered) - fault.at, 1)
                if answered
                else None,
            }
        )
    return out


def rss_check(soak) -> dict:
    rows = {}
    start, end = soak.rss.get("start", {}), soak.rss.get("end", {})
    for role in start:
        a, b = start[role]["rss_mb"], end.get(role, {}).get("rss_mb", 0.0)
        growth = (b - a) / a if a else None
        rows[role] = {
            "start_mb": a,
            "middle_mb": soak.rss.get("middle", {}).get(role, {}).get("rss_mb"),
            "end_mb": b,
            "growth": round(growth, 3) if growth is not None else None,
            "pids": [
                soak.rss.get(p, {}).get(role, {}).get("pid") for p in ("start", "middle", "end")
            ],
        }
    return rows


def report(soak, supervisor: Supervisor, receiver: Receiver, database_url: str) -> dict:
    jobs, drained_s = drain(soak, receiver, database_url)
    # Final ends (audio time of the session) for the lag: read from the stored rows.
    with psycopg.connect(database_url, autocommit=True) as conn:
        ends = dict(
            ((job_id, index), end)
            for job_id, index, end in conn.execute(
                'SELECT job_id::text, index, "end" FROM realtime_streamsegment'
            ).fetchall()
        )
    for session in soak.sessions:
        session.final_ends = {i: ends.get((session.job_id, i)) for i, _, _ in session.finals}
    figures = {
        "minutes": soak.args.minutes,
        "drain_s": round(drained_s, 1),
        "http": http_check(soak),
        "jobs": jobs_check(soak, jobs),
        "finals": finals_check(soak, database_url, jobs),
        "webhooks": webhooks_check(receiver, jobs),
        "streams": streams_check(soak),
        "recovery": recovery(soak),
        "rss": rss_check(soak),
        "deaths": [
            {
                "process": d.name,
                "at_s": round(soak.since(d.at), 1),
                "how": d.how,
                "planned": d.planned,
            }
            for d in supervisor.deaths
        ],
    }
    checks = {
        "no 5xx outside the fault windows": figures["http"]["outside"].get("5xx", 0) == 0,
        "no request unanswered outside the fault windows": (
            figures["http"]["outside"].get("no_answer", 0) == 0
        ),
        "no job lost or stuck": not figures["jobs"]["lost"] and not figures["jobs"]["stuck"],
        "every final received stored exactly once": all(
            figures["finals"][k] == 0
            for k in ("not_stored", "stored_twice", "not_in_result", "twice_in_result")
        ),
        "no webhook lost": not figures["webhooks"]["lost"],
        "flat RSS (<= 15 % growth)": all(
            (row["growth"] or 0) <= RSS_GROWTH_MAX for row in figures["rss"].values()
        ),
    }
    figures["checks"] = checks
    figures["pass"] = all(checks.values())
    print_report(figures)
    return figures


def print_report(f: dict) -> None:
    print()
    print(f"soak: {f['minutes']:g} min of load, drained in {f['drain_s']} s")
    for place in ("outside", "inside"):
        counts = f["http"][place]
        detail = {k: v for k, v in counts.items() if k.startswith(("5xx ", "no answer "))}
        print(
            f"  requests {place} the fault windows: {counts.get('requests', 0)}, "
            f"5xx {counts.get('5xx', 0)}, no answer {counts.get('no_answer', 0)} {detail or ''}"
        )
    j = f["jobs"]
    print(
        f"  jobs: {j['jobs']} ({j['uploads_accepted']} uploads, {j['stream_jobs']} live "
        f"sessions) {j['statuses']}; lost {len(j['lost'])}, stuck {len(j['stuck'])}, "
        f"unknown to clients {j['unknown_to_clients']}; failed {j['failed'] or 'none'}"
    )
    for place, latency in j["upload_latency_s"].items():
        print(
            f"  upload to completed, created {place} the fault windows: p50 {latency['p50']} s, "
            f"max {latency['max']} s"
        )
    fi = f["finals"]
    print(
        f"  finals received {fi['received']}: not stored {fi['not_stored']}, stored twice "
        f"{fi['stored_twice']}, other text stored {fi['stored_other_text']}, not in the result "
        f"{fi['not_in_result']}, twice in the result {fi['twice_in_result']}"
    )
    for example in fi["examples"]:
        print(f"    {example}")
    w = f["webhooks"]
    print(
        f"  webhooks: {w['expected']} expected, {w['received']} received, lost "
        f"{len(w['lost'])}, repeated deliveries {w['repeated_deliveries']}, bad signatures "
        f"{w['bad_signatures']}, last status differs {len(w['status_differs'])}"
    )
    s = f["streams"]
    print(
        f"  streams: {s['sessions']} sessions, {s['completed']} completed, {s['interrupted']} "
        f"interrupted (told {s['told']}, of which worker_lost {s['told_worker_lost']}; dropped "
        f"untold {s['dropped_untold']}), reconnected {s['reconnected']}, refused or failed "
        f"handshakes {s['refused_or_failed_handshakes']}; close codes {s['close_codes']}; "
        f"error events {s['error_events']}"
    )
    print(
        f"  live audio sent {s['audio_s']} s, skipped while reconnecting {s['skipped_audio_s']} "
        f"s; final lag p50 {s['final_lag_p50_s']} s, p95 {s['final_lag_p95_s']} s"
    )
    for r in f["recovery"]:
        print(
            f"  {r['fault']} at {r['at_s']} s: back after {r['back_after_s']} s; clients told "
            f"after {r['clients_told_after_s']} s; every stream in a new session after "
            f"{r['streams_ready_again_after_s']} s, giving finals again after "
            f"{r['streams_final_again_after_s']} s ({r['streams_final_again']}/4); uploads "
            f"answered after {r['uploads_answered_after_s']} s"
        )
    print("  RSS (MB, the process and its children) start / middle / end, growth:")
    for role, row in f["rss"].items():
        print(
            f"    {role:<13} {row['start_mb']:>7} / {row['middle_mb']} / {row['end_mb']:>7}"
            f"  {row['growth'] if row['growth'] is None else format(row['growth'], '+.1%')}"
            f"  pids {row['pids']}"
        )
    for death in f["deaths"]:
        print(
            f"  death: {death['process']} at {death['at_s']} s, {death['how']}"
            f"{'' if death['planned'] else ' (UNPLANNED)'}"
        )
    for name, ok in f["checks"].items():
        print(f"  {name}: {verdict(ok)}")
