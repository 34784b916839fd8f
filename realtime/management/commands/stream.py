"""manage.py stream FILE --url ws://…/v1/stream: play a file into a live session."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from realtime.client import stream_file


def _clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes):02d}:{secs:04.1f}"


class Command(BaseCommand):
    help = "Stream an audio or video file to scribe's WebSocket API and print what comes back."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path)
        parser.add_argument("--url", default="ws://127.0.0.1:8000/v1/stream")
        parser.add_argument(
            "--key",
            default=os.environ.get("SCRIBE_API_KEY"),
            help="API key with the stream scope (default: $SCRIBE_API_KEY)",
        )
        parser.add_argument(
            "--speed",
            type=float,
            default=1.0,
            help="playback speed: 1 is real time, 4 four times faster",
        )
        parser.add_argument("--language", help="language code, e.g. ko (default: detect)")
        parser.add_argument("--hotwords", nargs="+", default=[])
        parser.add_argument("--json", action="store_true", help="print every event as JSON")

    def handle(self, *args, **options):
        if not options["key"]:
            raise CommandError(
                "No API key: pass --key or set SCRIBE_API_KEY "
                "(manage.py create_api_key --owner NAME --scopes stream)."
            )
        if options["speed"] <= 0:
            raise CommandError("--speed must be positive")
        tty = sys.stdout.isatty() and not options["json"]

        def show(event: dict) -> None:
            kind = event["type"]
            if options["json"]:
                self.stdout.write(json.dumps(event, ensure_ascii=False))
            elif kind == "partial" and tty:
                self.stdout.write(f"\r\033[K… {event['text']}", ending="")
            elif kind == "partial":
                self.stdout.write(f"partial {_clock(event['start'])} {event['text']}")
            elif kind == "final":
                segment = event["segment"]
                prefix = "\r\033[K" if tty else ""
                self.stdout.write(
                    f"{prefix}[{_clock(segment['start'])} → "
                    f"{_clock(segment['end'])}] {segment['text']}"
                )
            elif kind == "error":
                self.stderr.write(f"error {event['code']}: {event['message']}")
            elif kind == "ready":
                self.stderr.write(f"session {event['session_id']} (job {event['job_id']})")
            elif kind == "closed":
                self.stderr.write(f"closed; transcript kept as job {event['job_id']}")

        stream_options = {"language": options["language"], "hotwords": options["hotwords"]}
        try:
            run = asyncio.run(
                stream_file(
                    options["url"],
                    options["key"],
                    options["file"],
                    speed=options["speed"],
                    options=stream_options,
                    on_event=show,
                )
            )
        except OSError as exc:
            raise CommandError(f"Cannot connect to {options['url']}: {exc}") from None
        except Exception as exc:  # websockets' handshake errors: refused, bad status
            raise CommandError(f"The stream failed: {exc}") from None
        if run.close_code not in (1000, None):
            raise CommandError(f"The server closed the session with code {run.close_code}.")
