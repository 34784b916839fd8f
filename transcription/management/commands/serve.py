"""manage.py serve: scribe on one machine, as one supervised process group.

Migrates the database, creates a first API key when none exists (printed once), then runs
the web process (daphne), the batch workers (qcluster) and — with ``REDIS_URL`` — the
realtime worker (``runworker realtime``). On the embedded defaults the in-memory channel
layer cannot reach another process, so live decoding runs inside the web process. Ctrl-C
or SIGTERM stops every child; when one child dies the whole group stops and says which
(see scribe/supervisor.py for why it does not restart it). ``--tunnel cloudflare|ngrok``
adds a public URL through the tunnel client on PATH.

In production run the processes separately (see docker/ and docs/operations.md, "Serving").
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

import httpx
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from accounts.models import APIKey, Scope
from accounts.services import api_key_create
from scribe.supervisor import Child, ProcessGroup
from scribe.tunnel import CLIENTS, TunnelClient, find_client
from scribe.web import daphne_arguments
from transcription.engine import EngineError
from transcription.engine.bundles import lane_model_missing, model_fetch
from transcription.engine.registry import bundled_model_offer
from transcription.lanes import LANES, lane_model_name

LIVE_TIMEOUT_S = 120.0
TUNNEL_URL_TIMEOUT_S = 60.0
# Hosts the tunnels' public names end with, allowed on the web process with --tunnel.
TUNNEL_HOSTS = {
    "cloudflare": [".trycloudflare.com"],
    "ngrok": [".ngrok-free.app", ".ngrok-free.dev", ".ngrok.app", ".ngrok.io"],
}


class Command(BaseCommand):
    help = (
        "Serve the API (daphne), the batch workers (qcluster) and, with REDIS_URL, the "
        "realtime worker, until interrupted."
    )

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--no-workers",
            action="store_true",
            help="serve only; run `manage.py qcluster` elsewhere",
        )
        parser.add_argument(
            "--tunnel",
            choices=sorted(CLIENTS),
            help="publish the API through a tunnel client on PATH (cloudflared or ngrok)",
        )

    def handle(self, *args, **options):
        tunnel: tuple[TunnelClient, str] | None = None
        if options["tunnel"]:
            client, program = find_client(options["tunnel"])
            if program is None:
                self.stderr.write(f"scribe: {client.install}")
                raise SystemExit(2)
            tunnel = (client, program)

        call_command("migrate", verbosity=0, interactive=False)
        self._ensure_models(["realtime"] if options["no_workers"] else list(LANES))
        first_key = self._first_key()

        env = dict(os.environ)
        metrics_dir = None
        if not env.get("PROMETHEUS_MULTIPROC_DIR"):
            # Every child writes its metrics here, so /metrics sums the whole group.
            metrics_dir = tempfile.mkdtemp(prefix="scribe-metrics-")
            env["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        if tunnel is not None:
            hosts = list(settings.ALLOWED_HOSTS) + TUNNEL_HOSTS[tunnel[0].name]
            env["ALLOWED_HOSTS"] = ",".join(hosts)

        group = ProcessGroup(env)
        signal.signal(signal.SIGINT, group.request_stop)
        signal.signal(signal.SIGTERM, group.request_stop)
        try:
            ended = self._run(group, options, tunnel, first_key)
        finally:
            group.stop()
            if metrics_dir:
                shutil.rmtree(metrics_dir, ignore_errors=True)
        if ended is not None:
            raise SystemExit(1)

    def _ensure_models(self, lanes: list[str]) -> None:
        """Fetch a missing lane model when online; offline, refuse before starting anything."""
        models_dir = settings.SCRIBE_MODELS_DIR
        for lane in lanes:
            name = lane_model_name(lane)
            missing = lane_model_missing(name, models_dir=models_dir)
            if not missing:
                continue
            if settings.SCRIBE_OFFLINE:
                offer = bundled_model_offer(
                    how="set SCRIBE_BATCH_MODEL={path} and SCRIBE_REALTIME_MODEL={path}"
                )
                self.stderr.write(
                    f"scribe: the {lane} model is missing: {missing}\n"
                    "scribe: import an offline copy with manage.py models import PATH --name NAME"
                    + (f"\nscribe:{offer}" if offer else "")
                )
                raise SystemExit(1)
            self.stderr.write(f"scribe: fetching the {lane} model {name} (first run)…")
            try:
                model_fetch(name, models_dir=models_dir, offline=False)
            except EngineError as exc:
                self.stderr.write(f"scribe: {exc.message}")
                raise SystemExit(1) from None

    def _first_key(self) -> str | None:
        """On a fresh database, create a key with every scope and print it once."""
        if APIKey.objects.exists():
            return None
        _, secret = api_key_create(
            owner_name="admin", scopes=[s.value for s in Scope], name="first key (serve)"
        )
        self.stdout.write(
            "scribe: created the first API key (all scopes). It is shown once, keep it:\n"
            f"  {secret}\n"
            "scribe: more keys: manage.py create_api_key --owner NAME, or the admin."
        )
        self.stdout.flush()
        return secret

    def _run(self, group: ProcessGroup, options, tunnel, first_key: str | None) -> Child | None:
        """Run until a stop is asked for (None) or a child ends (that child)."""
        python, manage = sys.executable, str(settings.BASE_DIR / "manage.py")
        bind, port = options["bind"], options["port"]
        group.start(
            "web",
            [python, "-m", "daphne", *daphne_arguments(bind, port)],
        )
        if not options["no_workers"]:
            group.start("batch worker", [python, manage, "qcluster"])
            if settings.SCRIBE_LLM_BASE_URL:
                group.start("notes worker", [python, manage, "qcluster", "--name", "notes"])
        if settings.REDIS_URL and not settings.SCRIBE_REALTIME_IN_PROCESS:
            group.start(
                "realtime worker",
                [python, manage, "runworker", settings.SCRIBE_REALTIME_CHANNEL],
            )
        local = f"http://{'127.0.0.1' if bind in ('0.0.0.0', '::') else bind}:{port}"
        if not self._wait_live(group, local):
            return self._report_end(group)
        self.stderr.write(f"scribe: serving on {local} (docs at /v1/docs); Ctrl-C stops")
        if tunnel is not None:
            client, program = tunnel
            self._start_tunnel(group, client, program, local, first_key)
        return self._report_end(group)

    def _wait_live(self, group: ProcessGroup, local: str) -> bool:
        deadline = time.monotonic() + LIVE_TIMEOUT_S
        while time.monotonic() < deadline and not group.stopping.is_set():
            if group.dead() is not None:
                return False
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{local}/health/live", timeout=2).status_code == 200:
                    return True
            group.stopping.wait(0.3)
        if not group.stopping.is_set():
            self.stderr.write(f"scribe: the web process did not answer on {local} in time")
            group.request_stop()
        return False

    def _start_tunnel(
        self,
        group: ProcessGroup,
        client: TunnelClient,
        program: str,
        local: str,
        first_key: str | None,
    ) -> None:
        found = threading.Event()

        def on_line(child: Child, line: str) -> None:
            if found.is_set():
                return
            error = client.parse_error(line)
            if error:
                self.stderr.write(f"scribe: {client.program}: {error}")
            url = client.parse_line(line)
            if url:
                found.set()
                key = (
                    first_key
                    if first_key
                    else "one of your keys (create one: manage.py create_api_key --owner NAME)"
                )
                self.stdout.write(
                    f"scribe: public URL {url}\n"
                    f"  API key to use: {key}\n"
                    f"  e.g. curl -H 'Authorization: Bearer KEY' -F file=@audio.mp3 {url}/v1/jobs"
                )
                self.stdout.flush()

        # SIGINT: cloudflared and ngrok both shut down on it as on a terminal's Ctrl-C.
        group.start(
            f"tunnel ({client.program})",
            client.command(program, local),
            stop_signal=signal.SIGINT,
            on_line=on_line,
        )
        threading.Thread(
            target=self._warn_without_url, args=(group, found, client), daemon=True
        ).start()

    def _warn_without_url(self, group: ProcessGroup, found: threading.Event, client) -> None:
        if not found.wait(TUNNEL_URL_TIMEOUT_S) and not group.stopping.is_set():
            self.stderr.write(
                f"scribe: {client.program} has not reported a public URL after "
                f"{TUNNEL_URL_TIMEOUT_S:.0f} s; the server keeps running locally."
            )

    def _report_end(self, group: ProcessGroup) -> Child | None:
        ended = group.wait()
        if ended is None:
            self.stderr.write("scribe: stopping every process…")
            return None
        self.stderr.write(
            f"scribe: the {ended.name} process {ended.describe_exit()}; stopping the others."
        )
        for line in ended.tail:
            self.stderr.write(f"  {ended.name}: {line}")
        return ended
