# One entry point for people and CI. Every target sets up .venv itself first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LIVEKIT := $(VENV)/livekit
LIVEKIT_STAMP := $(LIVEKIT)/.installed

export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: run serve test lint typecheck bench detect clean lock livekit

# Silent, with its note on stderr, so a first `make run … > out.srt` holds only the transcript.
$(STAMP): pyproject.toml
	@echo "Setting up $(VENV) (once, or when pyproject.toml changes)…" >&2
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip >&2
	@$(BIN)/python -m pip install --quiet -e ".[dev,s3,realmodel,bench]" >&2
	@touch $(STAMP)

# LiveKit Agents' Deepgram plugin in a venv of its own (its WebRTC wheels and pins are not
# scribe's), for tests/e2e/test_livekit_plugin_e2e.py and benchmarks/livekit_deepgram.py.
$(LIVEKIT_STAMP): requirements/livekit.txt | $(STAMP)
	@echo "Setting up $(LIVEKIT) (once, or when requirements/livekit.txt changes)…" >&2
	@test -x $(LIVEKIT)/bin/python || $(PYTHON) -m venv $(LIVEKIT)
	@$(LIVEKIT)/bin/python -m pip install --quiet -r requirements/livekit.txt >&2
	@touch $(LIVEKIT_STAMP)

livekit: $(LIVEKIT_STAMP)

# make run FILE=meeting.mp3 [ARGS="--format srt --language ko"] > meeting.srt
# Silent recipe lines (@): stdout holds only the transcript.
run: $(STAMP)
	@test -n "$(FILE)" || { echo "usage: make run FILE=path/to/audio-or-video [ARGS='--format srt']" >&2; exit 2; }
	@$(BIN)/python manage.py migrate --verbosity 0
	@$(BIN)/python manage.py transcribe "$(FILE)" $(ARGS)

# make serve: the API on http://127.0.0.1:8000 and the batch workers, embedded defaults.
serve: $(STAMP)
	$(BIN)/python manage.py migrate --verbosity 0
	$(BIN)/python manage.py serve $(ARGS)

detect: $(STAMP)
	$(BIN)/python manage.py detect

# Tests never touch the network: models come from the random-weight fixture.
# The same checks as the pre-commit hooks (ruff check and format, mypy), then the tests.
test: $(STAMP) $(LIVEKIT_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy scribe transcription realtime glossary accounts openai_compat deepgram_compat notes webhooks
	$(BIN)/python manage.py makemigrations --check --dry-run --verbosity 0
	SECRET_KEY=deploy-check-not-a-real-secret-0123456789-abcdefghijklmnopqrstuvwxyz \
	  SCRIBE_BEHIND_TLS_PROXY=true $(BIN)/python manage.py check --deploy --fail-level WARNING
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(ARGS)

# requirements/images.txt, the hashed lock the docker images install from (needs PyPI);
# tests/test_docker.py fails until it is rerun after pyproject.toml's dependencies change.
lock: $(STAMP)
	$(BIN)/python requirements/lock.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy scribe transcription realtime glossary accounts openai_compat deepgram_compat notes webhooks

# Every benchmark that finishes on a CPU in minutes, one after another (about 20 minutes on
# 2 shared cores; each took 1 to 4). Needs PostgreSQL and Redis on loopback and ../shared/audio.
# Not here (docs/benchmarks.md says more):
#   benchmarks/realtime_latency.py --real --threads 2   live captions on tiny.en (realtime_real.py), 18 min here
#   benchmarks/upload_memory.py                         daphne's RSS during a 1 GiB upload: writes 2 GiB of temp files
#   benchmarks/db_load.py                               all three connection modes: a git worktree of the commit before the pool, 8 min
#   benchmarks/gpu_priority.py [--model-dir DIR]        streams before batch: needs a CUDA GPU
#   benchmarks/soak.py --minutes 10                     a soak with faults (its parts: soak_stack.py, soak_report.py), 16 min
#   benchmarks/livekit_deepgram.py --livekit-python PY  LiveKit's Deepgram plugin on /v1/listen: the plugin lives in another venv
bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/engine_overhead.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/engine_memory.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/jobs_api.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/detect_latency.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/openai_stream.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/diarize_channels.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/realtime_latency.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/realtime_memory.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/worker_kill_trial.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/realtime_failover.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/db_load.py --modes pool
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/notes_overhead.py
	HF_HUB_OFFLINE=1 $(BIN)/python benchmarks/deepgram_latency.py --threads 2

clean:
	rm -rf $(VENV) var
