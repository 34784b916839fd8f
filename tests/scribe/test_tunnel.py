"""`manage.py serve --tunnel`: the URL parsers on the clients' log formats, and the tunnel
client as a supervised child (a stand-in executable on PATH: the process edge)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from scribe.tunnel import CLIENTS, cloudflared_url, ngrok_error, ngrok_url
from tests.conftest import REPO_ROOT
from tests.e2e.stack import free_port

# Log lines in the clients' formats (cloudflared 2024.x quick tunnel on stderr; ngrok v3
# with --log stdout --log-format json), written from their documented output.
RECORDED = Path(__file__).parent / "recorded"
CLOUDFLARE_URL = "https://sensible-ministries-outline-harvard.trycloudflare.com"


def first_url(client: str, log: str) -> str | None:
    for line in (RECORDED / log).read_text().splitlines():
        url = CLIENTS[client].parse_line(line)
        if url:
            return url
    return None


def test_it_reads_the_quick_tunnel_url_from_cloudflared_and_not_its_terms_links():
    assert first_url("cloudflare", "cloudflared_quick_tunnel.log") == CLOUDFLARE_URL
    assert cloudflared_url("INF Requesting new quick Tunnel on trycloudflare.com...") is None


def test_it_reads_the_started_tunnel_url_from_ngrok_json_logs():
    assert first_url("ngrok", "ngrok_json.log") == "https://5d1c-203-0-113-7.ngrok-free.app"
    assert ngrok_url('{"msg": "starting web service", "addr": "127.0.0.1:4040"}') is None
    assert ngrok_url("not json at all") is None


def test_it_reports_ngroks_own_error_when_the_authtoken_is_missing():
    lines = (RECORDED / "ngrok_no_authtoken.log").read_text().splitlines()
    errors = [e for e in map(ngrok_error, lines) if e]
    assert errors and "ERR_NGROK_4018" in errors[0]
    assert first_url("ngrok", "ngrok_no_authtoken.log") is None


STAND_IN = textwrap.dedent(
    """\
    #!{python}
    import os, pathlib, signal, sys, time
    state = pathlib.Path({state!r})
    state.joinpath("pid").write_text(str(os.getpid()))
    state.joinpath("argv").write_text("\\n".join(sys.argv[1:]))
    def stop(signum, frame):
        state.joinpath("stopped").write_text(signal.Signals(signum).name)
        sys.exit(0)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    sys.stderr.write(pathlib.Path({log!r}).read_text())
    sys.stderr.flush()
    while True:
        time.sleep(0.1)
    """
)


def serve_env(tmp_path: Path, model_dir: Path, path: str) -> dict[str, str]:
    env = {
        **os.environ,
        "PATH": path,
        "SCRIBE_SQLITE_PATH": str(tmp_path / "data" / "db.sqlite3"),
        "SCRIBE_MEDIA_ROOT": str(tmp_path / "data" / "media"),
        "SCRIBE_MODELS_DIR": str(tmp_path / "data" / "models"),
        "SCRIBE_BATCH_MODEL": str(model_dir),
        "SCRIBE_REALTIME_MODEL": str(model_dir),
        "SCRIBE_DEVICE": "cpu",
        "SCRIBE_CPU_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
    }
    for name in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    return env


def test_serve_without_the_tunnel_client_says_how_to_install_it_and_exits_2(tmp_path, model_dir):
    empty = tmp_path / "bin"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, "manage.py", "serve", "--tunnel", "cloudflare"],
        cwd=REPO_ROOT,
        env=serve_env(tmp_path, model_dir, str(empty)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cloudflared is not on PATH: install it" in lines[0]
    assert not (tmp_path / "data" / "db.sqlite3").exists()  # nothing started, nothing made


@pytest.mark.e2e
def test_serve_with_a_tunnel_prints_the_url_and_key_once_and_stops_the_client_on_ctrl_c(
    tmp_path, model_dir
):
    state, bin_dir = tmp_path / "state", tmp_path / "bin"
    state.mkdir()
    bin_dir.mkdir()
    stand_in = bin_dir / "cloudflared"
    stand_in.write_text(
        STAND_IN.format(
            python=sys.executable,
            state=str(state),
            log=str(RECORDED / "cloudflared_quick_tunnel.log"),
        )
    )
    stand_in.chmod(0o755)
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--no-workers", "--port", str(port)]
        + ["--tunnel", "cloudflare"],
        cwd=REPO_ROOT,
        env=serve_env(tmp_path, model_dir, f"{bin_dir}{os.pathsep}{os.environ['PATH']}"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out: list[str] = []
        deadline = time.monotonic() + 90
        assert serve.stdout is not None
        while time.monotonic() < deadline:
            line = serve.stdout.readline()
            if not line:
                break
            out.append(line)
            if "API key to use" in line:
                break
        text = "".join(out)
        assert f"public URL {CLOUDFLARE_URL}" in text, text + serve.stderr.read()
        # The first key is printed when created and again beside the URL, nothing else.
        assert "created the first API key" in out[0]
        first_key = out[1].strip()
        assert text.count(first_key) == 2 and f"API key to use: {first_key}" in text
        assert text.count("public URL") == 1
        argv = (state / "argv").read_text().splitlines()
        assert argv[:1] == ["tunnel"] and f"http://127.0.0.1:{port}" in argv
        tunnel_pid = int((state / "pid").read_text())

        serve.send_signal(signal.SIGINT)
        assert serve.wait(timeout=60) == 0
        assert (state / "stopped").read_text() == "SIGINT"
        with pytest.raises(ProcessLookupError):
            os.kill(tunnel_pid, 0)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(serve.pid, signal.SIGKILL)
        serve.wait(timeout=10)
