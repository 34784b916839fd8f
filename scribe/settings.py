"""scribe settings: embedded defaults, production topology through the environment.

Unset, everything is embedded (SQLite, local media and models under ``var/``). Set
``DATABASE_URL``, ``REDIS_URL`` and the storage variables to run the production topology.
See the configuration table in docs/configuration.md.
"""

from __future__ import annotations

import hashlib
import importlib.util
import socket
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from scribe.db import postgres_connection_policy, process_role
from scribe.env import (
    COMPUTE_TYPES,
    env_bool,
    env_choice,
    env_device,
    env_int,
    env_list,
    env_log_level,
    env_optional_int,
    env_rate,
    env_str,
    parse_database_url,
)
from scribe.web import WEBSOCKET_CEILING_BYTES

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

DEBUG = env_bool("DEBUG", False)
_secret = env_str("SECRET_KEY")
if not _secret:
    if not DEBUG and env_bool("SCRIBE_REQUIRE_SECRET_KEY", False):
        raise ImproperlyConfigured("SECRET_KEY is not set: set SECRET_KEY or SECRET_KEY_FILE.")
    # The embedded default: fine for a laptop and tests, flagged by `check --deploy`.
    _secret = "insecure-embedded-default-set-SECRET_KEY-in-production"
SECRET_KEY = _secret
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])

# HTTPS. Behind a TLS-terminating proxy (SCRIBE_BEHIND_TLS_PROXY=true) the proxy says the
# request came over https in X-Forwarded-Proto, plain http is redirected (health checks
# excepted: load balancers probe them over http) and HSTS is sent. Cookies are secure
# whenever DEBUG is off: browsers send them to http://localhost all the same.
SCRIBE_BEHIND_TLS_PROXY = env_bool("SCRIBE_BEHIND_TLS_PROXY", False)
if SCRIBE_BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SCRIBE_SSL_REDIRECT", SCRIBE_BEHIND_TLS_PROXY)
SECURE_REDIRECT_EXEMPT = [r"^health/"]
SECURE_HSTS_SECONDS = env_int(
    "SCRIBE_HSTS_SECONDS", 31_536_000 if SCRIBE_BEHIND_TLS_PROXY else 0, minimum=0
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SCRIBE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SCRIBE_HSTS_PRELOAD", False)
# Asking browsers to preload HSTS for a domain is hard to undo: the operator's decision
# (SCRIBE_HSTS_PRELOAD), so `check --deploy` does not warn about a default.
SILENCED_SYSTEM_CHECKS = ["security.W021"]
SESSION_COOKIE_SECURE = env_bool("SCRIBE_SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

INSTALLED_APPS = [
    "daphne",
    # System checks of the deployment as a whole (scribe/checks.py).
    "scribe.apps.ScribeConfig",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Before channels: realtime's runworker command replaces Channels' own (it starts the
    # realtime worker at once, so it advertises its free slots: realtime/channel_worker.py).
    "realtime",
    "channels",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "accounts",
    # Before django_q: transcription's qcluster command sizes the cluster from the device plan.
    "transcription",
    "glossary",
    "webhooks",
    "notes",
    "openai_compat",
    "deepgram_compat",
    "django_q",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # The admin's and /v1/docs' static files, served by the web process itself (no nginx).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "scribe.urls"
WSGI_APPLICATION = "scribe.wsgi.application"
ASGI_APPLICATION = "scribe.asgi.application"
# `manage.py runserver` (daphne's) with the ceiling `serve` and the images give daphne.
DAPHNE_WEBSOCKET_MAX_MESSAGE_SIZE = DAPHNE_WEBSOCKET_MAX_FRAME_SIZE = WEBSOCKET_CEILING_BYTES

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Connections per process on PostgreSQL (see scribe/db.py and docs/operations.md, "Database
# connections"): a pool of at most SCRIBE_DB_POOL_MAX; 0 turns the pool off.
SCRIBE_DB_POOL_MIN = env_int("SCRIBE_DB_POOL_MIN", 0, minimum=0)
SCRIBE_DB_POOL_MAX = env_int("SCRIBE_DB_POOL_MAX", 8, minimum=0)
SCRIBE_DB_POOL_TIMEOUT_S = env_int("SCRIBE_DB_POOL_TIMEOUT_S", 5, minimum=1)
# Retry-After of a request refused because the database could not be reached in time.
SCRIBE_DB_RETRY_AFTER_S = 5

_database_url = env_str("DATABASE_URL")
if _database_url:
    _database = parse_database_url(_database_url)
    if _database["ENGINE"].endswith("postgresql"):
        _database = postgres_connection_policy(
            _database,
            pool_min=SCRIBE_DB_POOL_MIN,
            pool_max=SCRIBE_DB_POOL_MAX,
            pool_timeout_s=SCRIBE_DB_POOL_TIMEOUT_S,
            application_name=f"scribe-{process_role()}",
        )
    DATABASES = {"default": _database}
else:
    _sqlite_path = Path(env_str("SCRIBE_SQLITE_PATH") or VAR_DIR / "db.sqlite3")
    # The embedded default must work on a fresh clone, where var/ does not exist yet.
    _sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(_sqlite_path),
            # Web, queue broker and workers share this file: WAL lets readers run beside
            # the writer, IMMEDIATE takes the write lock up front instead of deadlocking.
            "OPTIONS": {
                "timeout": 30,
                "transaction_mode": "IMMEDIATE",
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Unset: the embedded django-q2 ORM broker and in-memory channel layer.
REDIS_URL = env_str("REDIS_URL") or None

# How the processes are laid out: "embedded" (one machine, the defaults above may be
# used) or "distributed" (web and workers in separate containers or hosts, as
# docker/compose.yml runs them): then SQLite and the in-memory channel layer are refused
# at start-up (scribe/checks.py), since processes that share no memory or disk would
# silently not see each other's jobs and live sessions.
SCRIBE_TOPOLOGY = env_choice("SCRIBE_TOPOLOGY", "embedded", {"embedded", "distributed"})

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# `collectstatic` writes here (the images do it at build time, compressed); WhiteNoise
# serves it. Without it (a fresh clone, `make serve`) WhiteNoise serves the apps' own
# static directories, so the admin is styled with DEBUG off either way.
STATIC_ROOT = Path(env_str("SCRIBE_STATIC_ROOT") or VAR_DIR / "static")
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # else WhiteNoise warns in every process
# From the apps only until collectstatic has run: their files would shadow the collected,
# compressed copies.
WHITENOISE_USE_FINDERS = not (STATIC_ROOT / "admin").is_dir()
MEDIA_ROOT = Path(env_str("SCRIBE_MEDIA_ROOT") or VAR_DIR / "media")
MEDIA_URL = "media/"

# --- scribe -------------------------------------------------------------------------
# Logical model names map to a hub name (downloaded into SCRIBE_MODELS_DIR on first use
# unless SCRIBE_OFFLINE) or a local CTranslate2 model directory.
SCRIBE_BATCH_MODEL = env_str("SCRIBE_BATCH_MODEL") or "large-v3"
SCRIBE_REALTIME_MODEL = env_str("SCRIBE_REALTIME_MODEL") or "large-v3-turbo"
SCRIBE_MODELS_DIR = Path(env_str("SCRIBE_MODELS_DIR") or VAR_DIR / "models")
SCRIBE_OFFLINE = env_bool("SCRIBE_OFFLINE", False) or env_bool("HF_HUB_OFFLINE", False)

SCRIBE_DEVICE = env_device("SCRIBE_DEVICE", "auto")
SCRIBE_COMPUTE_TYPE = env_choice("SCRIBE_COMPUTE_TYPE", "auto", set(COMPUTE_TYPES))
SCRIBE_WORKERS = env_optional_int("SCRIBE_WORKERS")
SCRIBE_CPU_THREADS = env_optional_int("SCRIBE_CPU_THREADS")
# Unset or "auto": one batch worker per GPU, more when a footprint measured there fits them.
SCRIBE_MAX_WORKERS_PER_GPU = env_optional_int("SCRIBE_MAX_WORKERS_PER_GPU")
# The lanes this host's device plan makes room for; "batch" alone on a host that runs no
# realtime worker, so its batch workers get the whole GPU.
SCRIBE_LANES = env_list("SCRIBE_LANES", ["batch", "realtime"])
# This host's name in the database (which worker holds a job, whose process may be checked
# for life here): each host must have its own. Containers on one machine, or hosts cloned
# from one image, set it apart.
SCRIBE_HOSTNAME = env_str("SCRIBE_HOSTNAME") or socket.gethostname()
if not SCRIBE_LANES or set(SCRIBE_LANES) - {"batch", "realtime"}:
    raise ImproperlyConfigured(
        f"SCRIBE_LANES={','.join(SCRIBE_LANES)!r}: list one or both of batch, realtime."
    )
# Models one process keeps loaded (least recently used goes first); on a GPU also bounded
# by the process's share of the device plan.
SCRIBE_MAX_LOADED_MODELS = env_int("SCRIBE_MAX_LOADED_MODELS", 2, minimum=1)
# Hardware is the operator's: a job request may name a device or compute type only when
# this is on (models are always limited to the served set).
SCRIBE_ALLOW_REQUEST_HARDWARE = env_bool("SCRIBE_ALLOW_REQUEST_HARDWARE", False)

SCRIBE_MAX_UPLOAD_MB = env_int("SCRIBE_MAX_UPLOAD_MB", 2048, minimum=1)
SCRIBE_MAX_DURATION_S = env_int("SCRIBE_MAX_DURATION_S", 4 * 3600, minimum=1)
# POST /v1/detect (speech presence, VAD only) takes clips up to this long; longer is a 413.
SCRIBE_DETECT_MAX_S = env_int("SCRIBE_DETECT_MAX_S", 60, minimum=1)
SCRIBE_RETENTION_DAYS = env_int("SCRIBE_RETENTION_DAYS", 7, minimum=0)
# Days an ended job's content-free record (status, times, durations) is kept before its
# row is deleted (transcription/erasure.py).
SCRIBE_RECORD_RETENTION_DAYS = env_int("SCRIBE_RECORD_RETENTION_DAYS", 30, minimum=1)

# --- jobs ---------------------------------------------------------------------------
SCRIBE_MAX_QUEUED_JOBS = env_int("SCRIBE_MAX_QUEUED_JOBS", 200, minimum=1)
SCRIBE_JOB_MAX_ATTEMPTS = env_int("SCRIBE_JOB_MAX_ATTEMPTS", 3, minimum=1)
# Longer than the slowest allowed job (4 h of audio at a real-time factor of 2, plus
# loading); a worker still running past it is killed and the job retried or failed.
SCRIBE_JOB_TIMEOUT_S = env_int("SCRIBE_JOB_TIMEOUT_S", 2 * SCRIBE_MAX_DURATION_S + 600, minimum=60)
SCRIBE_HEARTBEAT_S = env_int("SCRIBE_HEARTBEAT_S", 5, minimum=1)
# A processing job whose worker has not been heard of for this long is retried.
SCRIBE_STALE_AFTER_S = env_int("SCRIBE_STALE_AFTER_S", 60, minimum=5)

# What this deployment's keys in Redis are named after (the job queue, the channel layer,
# the cache): by default its database, so two deployments sharing one Redis database
# never take each other's jobs or live sessions.
_db = DATABASES["default"]
_db_identity = f"{_db.get('HOST', '')}:{_db.get('PORT', '')}/{_db['NAME']}"
SCRIBE_DEPLOYMENT = env_str("SCRIBE_DEPLOYMENT") or (
    f"scribe-{Path(str(_db['NAME'])).stem[:40]}-"
    f"{hashlib.sha256(_db_identity.encode()).hexdigest()[:8]}"
)
# A queued job whose broker message was lost (Redis flushed or restarted without
# persistence) is sent again once it has waited this long without a message in the
# broker; the minute schedule looks for such jobs.
SCRIBE_REQUEUE_AFTER_S = env_int("SCRIBE_REQUEUE_AFTER_S", 120, minimum=5)

_workers = SCRIBE_WORKERS or 1
Q_CLUSTER = {
    "name": SCRIBE_DEPLOYMENT,
    # Each worker process holds one model; `manage.py qcluster` sizes this from the device
    # plan unless SCRIBE_WORKERS is set.
    "workers": _workers,
    "timeout": SCRIBE_JOB_TIMEOUT_S,
    "retry": SCRIBE_JOB_TIMEOUT_S + 600,  # must exceed timeout, or a long job runs twice
    "max_attempts": SCRIBE_JOB_MAX_ATTEMPTS,
    "queue_limit": _workers,  # prefetch one task per worker: the rest stay queued for others
    "bulk": 1,
    "recycle": 200,
    "save_limit": 500,
    "ack_failures": True,
    "catch_up": False,
    "poll": 0.2,
    "label": "Job queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# --- storage --------------------------------------------------------------------------
SCRIBE_STORAGE = env_choice("SCRIBE_STORAGE", "local", {"local", "s3"})
_default_storage: dict[str, Any]
if SCRIBE_STORAGE == "s3":
    _s3_bucket = env_str("SCRIBE_S3_BUCKET")
    if not _s3_bucket:
        raise ImproperlyConfigured("SCRIBE_STORAGE=s3 needs SCRIBE_S3_BUCKET.")
    if importlib.util.find_spec("boto3") is None:
        raise ImproperlyConfigured(
            "SCRIBE_STORAGE=s3 needs boto3, which the s3 extra installs: "
            "pip install -e '.[s3]' (the docker images have it)."
        )
    _default_storage = {
        # django-storages' S3 backend, keeping large files out of memory (scribe/s3.py).
        "BACKEND": "scribe.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": _s3_bucket,
            # Unset: AWS itself; any S3-compatible server by its URL (MinIO, Ceph, …).
            "endpoint_url": env_str("SCRIBE_S3_ENDPOINT_URL") or None,
            # Unset: boto3's own chain (AWS_* variables, an instance role).
            "access_key": env_str("SCRIBE_S3_ACCESS_KEY_ID") or None,
            "secret_key": env_str("SCRIBE_S3_SECRET_ACCESS_KEY") or None,
            "region_name": env_str("SCRIBE_S3_REGION") or None,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    }
STORAGES = {
    "default": _default_storage,
    # Not the manifest storage: it fails every page when collectstatic has not run.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Uploads stream to a temporary file as they arrive, never into memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 0
FILE_UPLOAD_TEMP_DIR = env_str("SCRIBE_UPLOAD_TEMP_DIR") or None

# --- API ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.authentication.APIKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "accounts.permissions.HasScope",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttling.APIKeyRateThrottle"],
    # JSON bodies; the upload endpoints declare multipart themselves.
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_METADATA_CLASS": "scribe.schema.OptionsMetadata",
    "DEFAULT_SCHEMA_CLASS": "scribe.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "scribe.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "scribe.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
# --- realtime -------------------------------------------------------------------------
# Unset REDIS_URL: the in-memory layer, so streaming runs inside the web process.
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            # Explicit bounds: audio frames are large and a stuck worker must not grow Redis.
            "CONFIG": {
                # redis-py 8 defaults socket_timeout to 5 s, the same as channels_redis's
                # blocking BZPOPMIN: every idle receive would time out. Wait longer.
                "hosts": [{"address": REDIS_URL, "socket_timeout": 30}],
                "prefix": SCRIBE_DEPLOYMENT,
                "capacity": 1000,
                "expiry": 30,
                "group_expiry": 3600,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

SCRIBE_REALTIME_CHANNEL = env_str("SCRIBE_REALTIME_CHANNEL") or "realtime"
# Live sessions per realtime worker; unset or "auto": as many as the measured step cost
# lets run in real time (realtime/capacity.py).
SCRIBE_REALTIME_MAX_SESSIONS = env_optional_int("SCRIBE_REALTIME_MAX_SESSIONS")
# Sessions decoded together in one batch; 1 steps them one after another. Unset or
# "auto": batches of up to 8 where the worker measured that batching pays (a GPU), else 1.
SCRIBE_REALTIME_MAX_BATCH = env_optional_int("SCRIBE_REALTIME_MAX_BATCH")
SCRIBE_REALTIME_BEAM_SIZE = env_int("SCRIBE_REALTIME_BEAM_SIZE", 1, minimum=1)
# Decode live sessions inside the web process: the default with the in-memory layer,
# which cannot reach another process.
SCRIBE_REALTIME_IN_PROCESS = env_bool("SCRIBE_REALTIME_IN_PROCESS", not REDIS_URL)
# Streams before batch: batch workers on a device the realtime worker shares wait between
# segments while it reports a backlog (transcription/priority.py).
SCRIBE_REALTIME_PRIORITY = env_bool("SCRIBE_REALTIME_PRIORITY", True)

# --- LLM correction (off unless SCRIBE_LLM_BASE_URL is set) ------------------------------
SCRIBE_LLM_BASE_URL = env_str("SCRIBE_LLM_BASE_URL") or ""
SCRIBE_LLM_MODEL = env_str("SCRIBE_LLM_MODEL") or "qwen2.5-7b-instruct"
SCRIBE_LLM_API_KEY = env_str("SCRIBE_LLM_API_KEY") or ""
# Text is sent only to these hosts; anything else is refused before connecting.
SCRIBE_LLM_ALLOWED_HOSTS = env_list("SCRIBE_LLM_ALLOWED_HOSTS", ["localhost", "127.0.0.1"])
SCRIBE_LLM_TIMEOUT_S = env_int("SCRIBE_LLM_TIMEOUT_S", 20, minimum=1)
SCRIBE_LLM_MASK_PII = env_bool("SCRIBE_LLM_MASK_PII", True)

# --- notes and keywords (notes/, docs/notes.md; they need SCRIBE_LLM_BASE_URL) -----------
# Answers asked for one note: the first, then retries with the schema's errors.
SCRIBE_LLM_NOTES_ATTEMPTS = env_int("SCRIBE_LLM_NOTES_ATTEMPTS", 3, minimum=1)
# One notes request's wait for the LLM: a long answer takes a local model a while.
SCRIBE_LLM_NOTES_TIMEOUT_S = env_int("SCRIBE_LLM_NOTES_TIMEOUT_S", 180, minimum=1)
# The LLM's context window: longer transcripts are summarised in parts, then merged.
SCRIBE_LLM_CONTEXT_TOKENS = env_int("SCRIBE_LLM_CONTEXT_TOKENS", 8192, minimum=2048)
# The notes queue: its own django-q2 cluster (`manage.py qcluster --name notes`), so an
# LLM's wait never holds a batch worker and its model.
SCRIBE_NOTES_WORKERS = env_int("SCRIBE_NOTES_WORKERS", 2, minimum=1)
# A note's whole run (every part, merge and retry); past it the sweep runs it again.
SCRIBE_NOTES_TIMEOUT_S = env_int("SCRIBE_NOTES_TIMEOUT_S", 1800, minimum=60)
# Live keywords (the start option keywords: true): the LLM sees the new finals at most
# this often.
SCRIBE_LIVE_KEYWORDS_INTERVAL_S = env_int("SCRIBE_LIVE_KEYWORDS_INTERVAL_S", 10, minimum=1)
SCRIBE_NOTES_CLUSTER: dict[str, Any] = {
    "workers": SCRIBE_NOTES_WORKERS,
    "queue_limit": SCRIBE_NOTES_WORKERS,
    "timeout": SCRIBE_NOTES_TIMEOUT_S,
    "retry": SCRIBE_NOTES_TIMEOUT_S + 600,
    "label": "Notes queue",
}
# The notes queue's name in the broker: this deployment's, as the job queue's is, so two
# deployments sharing a Redis never take each other's notes (`qcluster --name notes`).
SCRIBE_NOTES_QUEUE = f"{SCRIBE_DEPLOYMENT}-notes"
Q_CLUSTER["ALT_CLUSTERS"] = {SCRIBE_NOTES_QUEUE: SCRIBE_NOTES_CLUSTER}

# --- speaker diarization (pyannote, the diarize extra) -----------------------------------
# auto: on where this process can find pyannote.audio (set true where only the workers
# have the extra). Off, "diarize": true is refused at submission; "channels" needs no model.
_diarization = env_choice("SCRIBE_DIARIZATION", "auto", {"auto", "true", "false"})
if _diarization == "auto":
    import importlib.util

    try:
        SCRIBE_DIARIZATION = importlib.util.find_spec("pyannote.audio") is not None
    except ImportError:  # no pyannote namespace at all
        SCRIBE_DIARIZATION = False
else:
    SCRIBE_DIARIZATION = _diarization == "true"
# A directory holding a pyannote pipeline (config.yaml), or a hub id fetched into
# SCRIBE_MODELS_DIR/pyannote on first use (not with SCRIBE_OFFLINE).
SCRIBE_DIARIZATION_MODEL = (
    env_str("SCRIBE_DIARIZATION_MODEL") or "pyannote/speaker-diarization-community-1"
)
SCRIBE_DIARIZATION_TOKEN = env_str("SCRIBE_DIARIZATION_TOKEN") or ""  # or _FILE

# --- webhooks (a job's callback_url; refused unless its host is listed) ------------------
SCRIBE_WEBHOOK_ALLOWED_HOSTS = env_list("SCRIBE_WEBHOOK_ALLOWED_HOSTS", [])
SCRIBE_WEBHOOK_TIMEOUT_S = env_int("SCRIBE_WEBHOOK_TIMEOUT_S", 10, minimum=1)
SCRIBE_WEBHOOK_MAX_ATTEMPTS = env_int("SCRIBE_WEBHOOK_MAX_ATTEMPTS", 6, minimum=1)
# Retry n waits SCRIBE_WEBHOOK_RETRY_BASE_S * 2**(n-1): 30 s, 1, 2, 4, 8 min by default.
SCRIBE_WEBHOOK_RETRY_BASE_S = env_int("SCRIBE_WEBHOOK_RETRY_BASE_S", 30, minimum=1)
# Webhook signing secrets are stored encrypted under this key (scribe/encryption.py); unset,
# it is derived from SECRET_KEY. The previous keys (comma-separated) only decrypt.
SCRIBE_SECRETS_KEY = env_str("SCRIBE_SECRETS_KEY") or ""
SCRIBE_SECRETS_KEY_PREVIOUS = env_list("SCRIBE_SECRETS_KEY_PREVIOUS", [])
if 0 < len(SCRIBE_SECRETS_KEY) < 32:
    raise ImproperlyConfigured(
        f"SCRIBE_SECRETS_KEY is {len(SCRIBE_SECRETS_KEY)} characters: use at least 32 random "
        "ones (python -c 'import secrets; print(secrets.token_urlsafe(32))')."
    )
# Where callers reach this API: result links in a webhook's body (a worker has no request).
SCRIBE_PUBLIC_URL = env_str("SCRIBE_PUBLIC_URL") or "http://127.0.0.1:8000"

# POST /v1/audio/transcriptions (without stream) waits this long for its job, then answers
# 504 pointing to /v1/jobs/{id}; under the openai SDK's 600 s default timeout.
# 0: at once, unless the job has ended (a client that polls /v1/jobs/{id} itself).
SCRIBE_OPENAI_WAIT_S = env_int("SCRIBE_OPENAI_WAIT_S", 540, minimum=0)
# With stream=true the events go on as long as the job takes (unset), or end with an error
# event naming the job after this many seconds.
SCRIBE_OPENAI_STREAM_WAIT_S = env_optional_int("SCRIBE_OPENAI_STREAM_WAIT_S", minimum=0)
# Requests per key, "N/second|minute|hour|day"; empty turns the limit off.
SCRIBE_RATE_LIMIT = env_rate("SCRIBE_RATE_LIMIT", "600/minute")
# POST /v1/detect per key, counted apart from SCRIBE_RATE_LIMIT: a client that asks before
# each chunk it sends must not use up the key's other calls. Empty turns it off.
SCRIBE_DETECT_RATE_LIMIT = env_rate("SCRIBE_DETECT_RATE_LIMIT", "3000/minute")
# Requests without a valid key (none, made up, expired, revoked) per client address; over
# it they get 429 until the window ends. Requests with a valid key are never counted here.
SCRIBE_AUTH_FAILURE_RATE_LIMIT = env_rate("SCRIBE_AUTH_FAILURE_RATE_LIMIT", "60/minute")
# Throttle counters live in the cache: shared through Redis when there is one.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": SCRIBE_DEPLOYMENT,
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Signals between the processes of one host (the realtime worker's backlog, its VRAM
# claim): Redis when there is one, else files, which every local process can read.
CACHES["coordination"] = (
    {**CACHES["default"], "KEY_PREFIX": f"{SCRIBE_DEPLOYMENT}-coordination"}
    if REDIS_URL
    else {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(VAR_DIR / "coordination"),
    }
)

SPECTACULAR_SETTINGS = {
    "TITLE": "scribe",
    "DESCRIPTION": "Private, self-hosted speech-to-text.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Request bodies get their own components: required fields and minimum lengths hold.
    "COMPONENT_SPLIT_REQUEST": True,
    # Every operation's error answers, in the one error shape (scribe/schema.py).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "scribe.schema.document_errors",
        "scribe.schema.document_links",
        "openai_compat.openapi.document_served_models",
    ],
}

# /metrics needs an admin-scoped key unless this is on (a scraper on a private network).
SCRIBE_METRICS_PUBLIC = env_bool("SCRIBE_METRICS_PUBLIC", False)

# "json": one object per line carrying job_id / session_id (scribe/logs.py).
SCRIBE_LOG_FORMAT = env_choice("SCRIBE_LOG_FORMAT", "plain", {"plain", "json"})
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "scribe.logs.JsonFormatter"},
    },
    "filters": {"context": {"()": "scribe.logs.ContextFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": SCRIBE_LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": env_log_level("SCRIBE_LOG_LEVEL", "WARNING")},
}
