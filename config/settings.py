"""Settings, read from the environment (12-factor).

``DJANGO_ENV``: ``development`` (default), ``test`` or ``production``.
Production refuses the defaults meant for a laptop: it needs a real
``DJANGO_SECRET_KEY``, ``JWT_SIGNING_KEY`` or ``JWT_PUBLIC_KEY``, and refuses
``FROZEN_NOW``. Where ``DATABASE_URL`` / ``REDIS_URL`` are unset the embedded
servers are started (``config/embedded.py``).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
ENV = os.environ.get("DJANGO_ENV", "development")
PRODUCTION = ENV == "production"


def _env_bool(name: str, default: bool) -> bool:
    return os.environ.get(name, str(default)).lower() in {"1", "true", "yes", "on"}


def _env_rate(name: str, default: str) -> str | None:
    """An API rate limit such as ``300/min``; ``off`` (or empty) lifts it."""
    value = os.environ.get(name, default).strip()
    return None if value.lower() in {"", "off", "none"} else value


if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
    if PRODUCTION:
        raise ImproperlyConfigured("production needs DATABASE_URL and REDIS_URL")
    from config import embedded

    embedded.provide(os.environ)

if PRODUCTION and os.environ.get("FROZEN_NOW"):
    raise ImproperlyConfigured("FROZEN_NOW freezes the clock and is refused in production")
if PRODUCTION and os.environ.get("TIME_LAPSE"):
    raise ImproperlyConfigured("TIME_LAPSE speeds the clock up and is refused in production")

_DEV_SECRET = "insecure-development-key-not-for-production"  # noqa: S105
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "" if PRODUCTION else _DEV_SECRET)
if not SECRET_KEY:
    raise ImproperlyConfigured("DJANGO_SECRET_KEY is required in production")
DEBUG = _env_bool("DJANGO_DEBUG", not PRODUCTION)
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "*" if not PRODUCTION else "").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "access",
    "ledger",
    "jobs",
    "campaigns",
    "vouchers",
    "referrals",
    "earn",
    "monitoring",
    "support",
    "replay",
    "demo",
]

MIDDLEWARE = [
    # First: every log line of the request, other middleware's included, names it.
    "monitoring.middleware.RequestIdMiddleware",
    # Before anything reads the path or query: text no view may be handed
    # (NUL, control characters, bytes that are not UTF-8, oversized) is a 400.
    "access.middleware.RequestInputMiddleware",
    # Outside the routing (and Django's debug page): an unrouted /api/ path is a JSON 404.
    "access.middleware.ApiNotFoundMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves the admin's static files from the web process itself: no separate server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
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
            ]
        },
    }
]


def _database(url: str) -> dict[str, object]:
    parsed = urlparse(url)
    if parsed.scheme not in {"postgres", "postgresql"}:
        raise ImproperlyConfigured(f"DATABASE_URL must be a postgresql:// URL, not {parsed.scheme}")
    query = {key: values[-1] for key, values in parse_qs(parsed.query).items()}
    host = query.pop("host", None) or parsed.hostname or ""
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parsed.path.lstrip("/")) or "rewards",
        "USER": unquote(parsed.username or "postgres"),
        "PASSWORD": unquote(parsed.password or ""),
        "HOST": host,
        "PORT": str(parsed.port or ""),
        "CONN_MAX_AGE": int(os.environ.get("DATABASE_CONN_MAX_AGE", "60")),
        "CONN_HEALTH_CHECKS": True,
        "OPTIONS": query,
        "TEST": {"NAME": os.environ.get("TEST_DATABASE_NAME", "test_rewards")},
    }


DATABASE_URL = os.environ["DATABASE_URL"]
DATABASES = {"default": _database(DATABASE_URL)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ["REDIS_URL"]
# Shared by every process: what one web worker counts (API rate limits), all see.
# Short timeouts: a rate-limit check fails open when Redis does not answer
# (monitoring/throttling.py), and a Redis that hangs must cost a request
# milliseconds, not the default of waiting forever. A healthy Redis answers in
# well under a millisecond.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "rewards",
        "OPTIONS": {
            "socket_connect_timeout": 0.25,
            "socket_timeout": 0.25,
        },
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# One ISO-like spelling of dates and UTC instants on every page (config/formats).
FORMAT_MODULE_PATH = ["config.formats"]
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- API ------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "access.authentication.ServiceTokenAuthentication",
        "access.authentication.ExchangeUserAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    # Bodies are JSON only, bounded in size, depth and text (access/parsers.py);
    # the event door has its own parser (ledger/parsers.py).
    "DEFAULT_PARSER_CLASSES": ["access.parsers.ApiJSONParser"],
    # Answers are JSON only: no browsable HTML API, in production or not.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_SCHEMA_CLASS": "access.openapi.ApiSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.CursorPagination",
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "access.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    # Counted in Redis (CACHES) per caller; see monitoring/throttling.py.
    "DEFAULT_THROTTLE_CLASSES": [
        "monitoring.throttling.ExchangeUserRateThrottle",
        "monitoring.throttling.ExchangeUserScopedThrottle",
        "monitoring.throttling.ServiceRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": _env_rate("THROTTLE_USER_RATE", "300/min"),
        "spin": _env_rate("THROTTLE_SPIN_RATE", "30/min"),
        "service": _env_rate("THROTTLE_SERVICE_RATE", "6000/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Rewards API",
    "DESCRIPTION": (
        "Promotions and rewards of the exchange: event ingestion, payouts, and the "
        "user-facing endpoints of campaigns, vouchers, referrals and Futures Earn. "
        "Users authenticate with the exchange's JWT (`Authorization: Bearer <jwt>`, "
        "`sub` = user id); other services with a service token "
        "(`Authorization: Bearer svc_...`). Amounts are decimal strings."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # The docs pages' scripts and styles are pinned static files of the project
    # (drf-spectacular-sidecar), never a CDN: they work without internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "access.openapi.closed_request_bodies",
    ],
    # Django's slug converter as a pattern: a path the schema admits is routed.
    "PATH_CONVERTER_OVERRIDES": {
        "slug": {"type": "string", "pattern": "^[-a-zA-Z0-9_]+$", "maxLength": 80},
    },
    # Choice sets that share a field name get a name of their own in generated clients.
    "ENUM_NAME_OVERRIDES": {
        "VoucherStatusEnum": ["active", "used", "expired", "voided"],
        "SpinKindEnum": ["coverage", "daily"],
        "VoucherPayoutStatusEnum": ["pending", "paid", "cancelled", "released"],
    },
}

# The exchange's auth service signs user JWTs. HS256 with a shared key by default;
# RS256 when JWT_PUBLIC_KEY (PEM) is given.
JWT_ALGORITHM = os.environ.get(
    "JWT_ALGORITHM", "RS256" if os.environ.get("JWT_PUBLIC_KEY") else "HS256"
)
JWT_SIGNING_KEY = os.environ.get(
    "JWT_SIGNING_KEY", "" if PRODUCTION else "development-jwt-key-not-for-production-use"
)
JWT_PUBLIC_KEY = os.environ.get("JWT_PUBLIC_KEY", "")
JWT_AUDIENCE = os.environ.get("JWT_AUDIENCE") or None
JWT_ISSUER = os.environ.get("JWT_ISSUER") or None
if PRODUCTION and not (JWT_SIGNING_KEY or JWT_PUBLIC_KEY):
    raise ImproperlyConfigured("production needs JWT_SIGNING_KEY or JWT_PUBLIC_KEY")

# --- Ingestion and payouts ------------------------------------------------------------
EVENT_STREAM = os.environ.get("EVENT_STREAM", "exchange.events")
EVENT_CONSUMER_GROUP = os.environ.get("EVENT_CONSUMER_GROUP", "rewards")
EVENT_RECLAIM_IDLE_MS = int(os.environ.get("EVENT_RECLAIM_IDLE_MS", "60000"))
PAYOUT_STREAM = os.environ.get("PAYOUT_STREAM", "rewards.payouts")
MAX_EVENTS_PER_REQUEST = 5000
# A batch body is read no further than this (413 beyond): 5,000 events of a
# few hundred bytes each fit many times over (docs/api.md).
MAX_EVENT_BATCH_BYTES = 32 * 1024 * 1024
REFERRAL_LINK_BASE = os.environ.get(
    "REFERRAL_LINK_BASE", "https://www.example-exchange.com/register?ref="
)

# --- Celery ------------------------------------------------------------------------
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or REDIS_URL.replace(
    "unix://", "redis+socket://", 1
)
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = _env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# django-celery-beat's scheduler, kept alive through a database outage (jobs/beat.py).
CELERY_BEAT_SCHEDULER = "jobs.beat:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"
# Outages of the broker (Redis) are waited out, never fatal: the worker and
# Beat connect again for as long as it takes, at start as later.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 5,
    # Far above the blocking read's second: only a Redis that hangs hits it.
    "socket_timeout": 30,
    "socket_keepalive": True,
    "retry_on_timeout": True,
}
# A trigger Beat sends (or a job's retry) waits out about a minute and a half of
# outage before it is given up and logged.
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 20,
    "interval_start": 0.5,
    "interval_step": 1,
    "interval_max": 5,
}
# A job running when the broker connection drops finishes; its message is
# delivered again later and the rerun pays nothing twice (idempotency keys).
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# The worker logs through LOGGING below (JSON lines) instead of its own format.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# One JSON object per line, with the request id or job id when there is one
# (monitoring/logs.py).
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "monitoring.logs.ContextFilter"}},
    "formatters": {"json": {"()": "monitoring.logs.JsonFormatter"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["context"]}
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"pgserver": {"level": "WARNING"}},
}

if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = _env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # Probes and the scraper call the process directly over plain HTTP; a
    # redirect would read as "healthy" to them whatever the answer would be.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
