"""Settings, all driven by environment variables (README "Configuration" lists every one)."""
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from oneglanse.files import private_directory, sqlite_database_private
from oneglanse.provider_ids import PROVIDER_IDS

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# The service's own files (SQLite database, embedded Redis, static files, generated secrets).
VAR_DIR = Path(env.str("ONEGLANSE_VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DJANGO_DEBUG", default=False)

_DEVELOPMENT_SECRET_KEY = "development-only-insecure-key"
# `bin/run` generates a key once into var/ (git-ignored) so local runs need no configuration.
_GENERATED_SECRET_KEY_FILE = VAR_DIR / "secret_key"
SECRET_KEY = env.str(
    "DJANGO_SECRET_KEY",
    default=_GENERATED_SECRET_KEY_FILE.read_text().strip() if _GENERATED_SECRET_KEY_FILE.exists()
    else (_DEVELOPMENT_SECRET_KEY if DEBUG else ""),
)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
if not DEBUG:
    # Production must be configured on purpose: no shipped secret, no wildcard host.
    if not SECRET_KEY or SECRET_KEY == _DEVELOPMENT_SECRET_KEY:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set to a secret value when DJANGO_DEBUG is off.")
    if "*" in ALLOWED_HOSTS:
        raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must list real host names when DJANGO_DEBUG is off, not '*'.")

HTTPS = env.bool("DJANGO_HTTPS", default=not DEBUG)
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS
SECURE_HSTS_SECONDS = 31536000 if HTTPS else 0
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "csp",
    "workspaces",
    "prompts",
    "agent",
    "visibility",
]

MIDDLEWARE = [
    "oneglanse.database_outage.DatabaseUnavailableMiddleware",  # an outage is a 503, not a 500
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "oneglanse.login_throttle.LoginThrottleMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "oneglanse.urls"
WSGI_APPLICATION = "oneglanse.wsgi.application"

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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    private_directory(VAR_DIR)  # the default database (and the test databases) live there
    if DATABASES["default"]["NAME"] not in ("", ":memory:") and "mode=memory" not in str(DATABASES["default"]["NAME"]):
        sqlite_database_private(Path(DATABASES["default"]["NAME"]))
    # Several consumer processes write at once: WAL lets readers run beside the writer,
    # IMMEDIATE takes the write lock up front (no deadlock-prone lock upgrades), and the
    # busy timeout makes a writer wait its turn instead of failing "database is locked".
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
    }
# Persistent connections: a worker thread or a web thread reconnects (and, on SQLite, re-runs its
# PRAGMAs) at most once a minute instead of around every task and request.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # PostgreSQL's JIT compiles any query whose estimated cost is high, and estimates over a
    # table of millions of answers are high even when the plan reads 50 rows off an index: the
    # admin run list spent 1 s compiling a query that runs in 0.2 ms. Our reads are short.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("options", "-c jit=off")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/login/"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: its challenge makes a missing or bad credential a 401 with WWW-Authenticate.
        "oneglanse.security.TokenOrBearerAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PARSER_CLASSES": [
        "oneglanse.security.DepthSafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    # Behind N reverse proxies, throttles take the client address from X-Forwarded-For.
    "NUM_PROXIES": env.int("DJANGO_NUM_PROXIES", default=None),
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "oneglanse.api.PageNumberPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "oneglanse.api.domain_exception_handler",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer", "rest_framework.renderers.BrowsableAPIRenderer"],
    "DEFAULT_THROTTLE_RATES": {"submit": env.str("AGENT_SUBMIT_RATE", default="3/min")},
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "OneGlanse Agent API",
    "DESCRIPTION": "Run a workspace's prompts against AI providers as runs and follow them live.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI from the drf-spectacular-sidecar package: works offline and under the CSP.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {
        "JobGroupStatusEnum": "agent.models.JobGroup.Status",
        "JobItemStatusEnum": "agent.models.JobItem.Status",
        "ProviderStatusEnum": "agent.models.JobGroupProvider.Status",
        "SubmitStatusEnum": ["queued", "scheduled", "empty"],
        "RunPriorityEnum": "agent.models.Priority",
        "RunTriggerEnum": "agent.models.JobGroup.Trigger",
        "ProgressStatusEnum": ["pending", "completed"],
        "MembershipRoleEnum": "workspaces.models.Membership.Role",
    },
}

# Redis: unset means the embedded server that `bin/run` starts on a socket under var/.
REDIS_URL = env.str("REDIS_URL", default=f"unix://{VAR_DIR / 'redis' / 'redis.sock'}")
# Django's cache is the same Redis, so throttle counters (submissions, log-ins) and the status
# endpoint's membership cache (workspaces/access.py) hold across every web process and host.
# Note: `cache.clear()` would empty that whole Redis database, queues included.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "oneglanse-cache",
    }
}

# Log-in attempts that fail, per username and per client address, on /api/auth/token/, /login/
# and /admin/login/ ("count/second|minute|hour"); a success does not count.
AGENT_LOGIN_RATE_USERNAME = env.str("AGENT_LOGIN_RATE_USERNAME", default="5/min")
AGENT_LOGIN_RATE_ADDRESS = env.str("AGENT_LOGIN_RATE_ADDRESS", default="20/min")

# Content-Security-Policy on every response (django-csp): our own scripts and styles only.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

AGENT_PROVIDER_BACKEND = env.str("AGENT_PROVIDER_BACKEND", default="simulated")
if AGENT_PROVIDER_BACKEND not in ("simulated", "live"):
    raise ImproperlyConfigured(f"AGENT_PROVIDER_BACKEND must be 'simulated' or 'live', not {AGENT_PROVIDER_BACKEND!r}.")
# Pages: in live mode, "Run now" and "Re-run" ask for confirmation above this many provider calls.
AGENT_CONFIRM_CALLS_ABOVE = env.int("AGENT_CONFIRM_CALLS_ABOVE", default=100)
# Where people open the pages; the CLI prints run links with it (bin/run sets it to its own address).
AGENT_SITE_URL = env.str("AGENT_SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
AGENT_SIMULATED_LATENCY_MS = env.int("AGENT_SIMULATED_LATENCY_MS", default=300)
AGENT_SIMULATED_FAILURE_RATE = env.str("AGENT_SIMULATED_FAILURE_RATE", default="0")
AGENT_PROGRESS_TTL = env.int("AGENT_PROGRESS_TTL", default=3600)
AGENT_MAX_ATTEMPTS = env.int("AGENT_MAX_ATTEMPTS", default=4)
AGENT_PROVIDER_TIMEOUT = env.float("AGENT_PROVIDER_TIMEOUT", default=120.0)
AGENT_RATE_LIMIT_WINDOW_SECONDS = env.float("AGENT_RATE_LIMIT_WINDOW_SECONDS", default=60.0)


def _rate_limit(provider_id: str) -> int:
    name = f"AGENT_RATE_LIMIT_{provider_id.upper()}"
    try:
        return max(0, env.int(name, default=0))
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a whole number of requests per window (or unset).") from None


# Requests per window for each provider, shared by every consumer on every host; 0 = unlimited.
AGENT_RATE_LIMITS = {provider_id: _rate_limit(provider_id) for provider_id in PROVIDER_IDS}

# Live providers (README "Live providers"). A missing key is not a start-up error: that provider's
# items fail at once with a message naming the variable.
OPENAI_API_KEY = env.str("OPENAI_API_KEY", default="")
OPENAI_BASE_URL = env.str("OPENAI_BASE_URL", default="https://api.openai.com/v1")
OPENAI_MODEL = env.str("OPENAI_MODEL", default="gpt-4o-search-preview")
PERPLEXITY_API_KEY = env.str("PERPLEXITY_API_KEY", default="")
PERPLEXITY_BASE_URL = env.str("PERPLEXITY_BASE_URL", default="https://api.perplexity.ai")
PERPLEXITY_MODEL = env.str("PERPLEXITY_MODEL", default="sonar")
GEMINI_API_KEY = env.str("GEMINI_API_KEY", default="")
GEMINI_BASE_URL = env.str("GEMINI_BASE_URL", default="https://generativelanguage.googleapis.com/v1beta")
GEMINI_MODEL = env.str("GEMINI_MODEL", default="gemini-2.5-flash")
ANTHROPIC_API_KEY = env.str("ANTHROPIC_API_KEY", default="")
ANTHROPIC_BASE_URL = env.str("ANTHROPIC_BASE_URL", default="https://api.anthropic.com/v1")
ANTHROPIC_MODEL = env.str("ANTHROPIC_MODEL", default="claude-sonnet-4-5")
ANTHROPIC_MAX_TOKENS = env.int("ANTHROPIC_MAX_TOKENS", default=2048)
# How many times a Claude turn that paused (stop_reason "pause_turn") is continued before the attempt fails.
ANTHROPIC_MAX_CONTINUATIONS = env.int("ANTHROPIC_MAX_CONTINUATIONS", default=3)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "[%(asctime)s] %(levelname)s %(name)s %(process)d: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}

# Reliability: running items heartbeat; an unfinished item silent for AGENT_RECOVERY_SECONDS is
# re-enqueued by a sweep that runs about every AGENT_RECOVERY_INTERVAL seconds inside the
# consumers; items unfinished AGENT_GROUP_DEADLINE_SECONDS after submission fail.
AGENT_RECOVERY_SECONDS = env.float("AGENT_RECOVERY_SECONDS", default=300.0)
AGENT_RECOVERY_INTERVAL = env.float("AGENT_RECOVERY_INTERVAL", default=30.0)
# Every consumer ticks about this often (with jitter) to fire due schedules and start delayed
# runs whose time has come, so either starts within about this long (well under 30 s).
AGENT_SCHEDULE_TICK_SECONDS = env.float("AGENT_SCHEDULE_TICK_SECONDS", default=5.0)
AGENT_GROUP_DEADLINE_SECONDS = env.float("AGENT_GROUP_DEADLINE_SECONDS", default=21600.0)

# Queue operations: a consumer's heartbeat record lives AGENT_CONSUMER_TTL seconds (refreshed three
# times per TTL), so a dead consumer drops out of GET /api/queues/ and /metrics within it.
# AGENT_METRICS_TOKEN, when set, is the bearer token GET /metrics requires.
AGENT_CONSUMER_TTL = env.float("AGENT_CONSUMER_TTL", default=60.0)
AGENT_METRICS_TOKEN = env.str("AGENT_METRICS_TOKEN", default="")
# Visibility: the consumers re-analyse workspaces whose brands changed, and write the figures of
# runs whose close could not, about every VISIBILITY_SWEEP_INTERVAL seconds (one pass at a time
# across every host; a pass's lock expires after VISIBILITY_SWEEP_LOCK_SECONDS if its consumer dies).
VISIBILITY_SWEEP_INTERVAL = env.float("VISIBILITY_SWEEP_INTERVAL", default=5.0)
VISIBILITY_SWEEP_LOCK_SECONDS = env.float("VISIBILITY_SWEEP_LOCK_SECONDS", default=120.0)
# A finished run's visibility and a trend are kept encoded in the cache this long (their keys change
# with the figures, so this bounds memory, not staleness); 0 turns the cache off.
VISIBILITY_CACHE_SECONDS = env.int("VISIBILITY_CACHE_SECONDS", default=3600)
# Each consumer reads a workspace's brand revision again at most this often (seconds) when it
# analyses an answer; what it analysed with older brands meanwhile is analysed again when its run closes.
VISIBILITY_MATCHER_TTL = env.float("VISIBILITY_MATCHER_TTL", default=5.0)
# At most this many lost items are put back (and as many failed or cancelled) per sweep, shared
# fairly between workspaces; the next sweep takes the rest.
AGENT_RECOVERY_BATCH = env.int("AGENT_RECOVERY_BATCH", default=10000)
# A worker holding a provider's result waits this long for the database to come back before it
# leaves the result held in Redis for the recovery sweep to record.
AGENT_DB_OUTAGE_SECONDS = env.float("AGENT_DB_OUTAGE_SECONDS", default=600.0)
