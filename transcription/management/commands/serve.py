"""manage.py serve: the web process (daphne) and the batch workers (qcluster) together.

For one machine with the embedded defaults. In production run them as separate
processes (see docker/): `daphne scribe.asgi:application` and `manage.py qcluster`.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the API (daphne) and run the batch workers (qcluster) until interrupted."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-workers",
            action="store_true",
            help="serve only; run `manage.py qcluster` elsewhere",
        )

    def handle(self, *args, **options):
        manage = str(settings.BASE_DIR / "manage.py")
        children = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "daphne",
                    "-b",
                    options["bind"],
                    "-p",
                    str(options["port"]),
                    "scribe.asgi:application",
                ]
            )
        ]
        if not options["no_workers"]:
            children.append(subprocess.Popen([sys.executable, manage, "qcluster"]))
        self.stderr.write(
            f"scribe: serving on http://{options['bind']}:{options['port']} "
            f"(docs at /v1/docs); Ctrl-C stops"
        )

        def stop(signum=None, frame=None):
            for child in children:
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)

        signal.signal(signal.SIGTERM, stop)
        try:
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            stop()
            for child in children:
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:  # never leave a worker behind
                    child.kill()
                    child.wait()
        failed = [c.returncode for c in children if c.returncode not in (0, -signal.SIGTERM)]
        if failed:
            raise SystemExit(failed[0])
