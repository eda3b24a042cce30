"""Cloud settings, read once at start-up from the environment (prefix GRIDGATE_) and passed down.

Nothing reads the environment at import time. `database_url` unset means: start an embedded
PostgreSQL (pgserver) in `data_dir`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class CloudSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRIDGATE_", extra="ignore", frozen=True)

    database_url: str | None = None
    data_dir: Path = Path("data/cloud")
    host: str = "127.0.0.1"
    port: Annotated[int, Field(ge=0, le=65535)] = 8000
    # the reverse proxies whose X-Forwarded-For/-Proto are believed (comma-separated addresses)
    forwarded_allow_ips: str = "127.0.0.1"
    # server processes sharing the port (`gridgate cloud serve --workers`); each holds a pool of
    # up to pool_max_size connections, and one more for the live streams
    workers: Annotated[int, Field(ge=1, le=64)] = 1
    pool_min_size: Annotated[int, Field(ge=1)] = 2
    pool_max_size: Annotated[int, Field(ge=1)] = 10
    # a streaming replica of the database: the charts' and readings' GET routes read from it
    # (as current as its replay: usually under a second behind), everything else the primary
    replica_url: str | None = Field(default=None, repr=False)
    # access tokens: HS256 over jwt_secret; unset, a random secret is kept in data_dir (0600)
    jwt_secret: str | None = Field(default=None, min_length=32, repr=False)
    access_token_ttl_s: Annotated[int, Field(ge=60, le=3600)] = 900
    refresh_token_ttl_s: Annotated[int, Field(ge=3600, le=90 * 86400)] = 14 * 86400
    # failed logins within login_window_s: one account from one address is refused after the
    # first number, one address (any accounts) after the second; an account failing from many
    # addresses is slowed to one try per login_slowdown_s, except from addresses it logged in
    # from before (its owner's), so nobody can lock an owner out by failing on purpose
    login_failures_per_account_address: Annotated[int, Field(ge=1, le=1000)] = 5
    login_failures_per_address: Annotated[int, Field(ge=1, le=100_000)] = 20
    login_failures_per_account: Annotated[int, Field(ge=1, le=100_000)] = 50
    login_slowdown_s: Annotated[int, Field(ge=1, le=3600)] = 30
    login_window_s: Annotated[int, Field(ge=10, le=86400)] = 900
    login_known_address_days: Annotated[int, Field(ge=1, le=365)] = 90
    # how long a checked session is trusted before the account is looked at again: a role,
    # scope, status or password change, or a logout, ends access within this many seconds
    session_check_s: Annotated[float, Field(ge=0, le=60)] = 2.0
    # API keys (`ggk_...`, for third parties): the furthest ahead a key may expire, and how many
    # live keys one user may hold
    api_key_max_days: Annotated[int, Field(ge=1, le=3660)] = 365
    api_keys_per_user: Annotated[int, Field(ge=1, le=1000)] = 25
    # requests per rate_limit_window_s, counted in PostgreSQL so they hold across every server
    # process: per user (sessions and keys together), per API key, and per client address for
    # requests without valid credentials; 0 turns a limit off. Ingest, /health, /metrics and
    # static files are not counted. Generous, so people in the web app never meet them.
    rate_limit_window_s: Annotated[int, Field(ge=1, le=3600)] = 60
    rate_limit_per_user: Annotated[int, Field(ge=0, le=1_000_000)] = 3000
    rate_limit_per_key: Annotated[int, Field(ge=0, le=1_000_000)] = 600
    rate_limit_per_address: Annotated[int, Field(ge=0, le=1_000_000)] = 600
    # request bodies (JSON and forms); ingest has its own bound (shared.MAX_BODY_BYTES)
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * 1024 * 1024)] = 1024 * 1024
    # /metrics: open to anyone only if metrics_public; otherwise only with this bearer token
    # (unset and not public: /metrics answers 404)
    metrics_public: bool = False
    metrics_token: str | None = Field(default=None, min_length=16, repr=False)
    # readings outside this window around "now" are refused: they would be clock faults
    ingest_max_age_days: Annotated[int, Field(ge=1)] = 3 * 366
    ingest_max_future_s: Annotated[int, Field(ge=0)] = 86400
    # the periodic jobs (cloud checks, retention): every this many seconds; 0 turns them off
    jobs_interval_s: Annotated[int, Field(ge=0, le=86400)] = 60
    # a scheduled billing run's claim: renewed every third of this while the run works; a
    # process that died holding one is replaced by another this long after its last renewal
    billing_lease_s: Annotated[float, Field(ge=1, le=3600)] = 300
    retention_interval_s: Annotated[int, Field(ge=0)] = 3600  # 0: no retention runs
    gateway_silent_s: Annotated[int, Field(ge=60)] = 900
    meter_missing_s: Annotated[int, Field(ge=60)] = 3600
    # reports go to <data_dir>/reports, or to this S3-compatible bucket when set
    reports_s3_bucket: str | None = None
    reports_s3_endpoint: str | None = None
    # e-mail: smtp://[user:password@]host[:port] (STARTTLS when the server offers it; add
    # ?starttls=require to insist) or smtps:// (TLS from the first byte). Unset: messages wait
    # in the outbox until it is set.
    smtp_url: str | None = Field(default=None, repr=False)
    mail_from: str = Field(default="GridGate <no-reply@gridgate.invalid>", max_length=254)
    # the address people reach this service at, for the links in e-mails; unset: http://host:port
    public_url: str | None = Field(default=None, max_length=500)
    # a sentence at the top of every page of the web app (a maintenance window, a test system)
    notice: str | None = Field(default=None, max_length=300)
    mail_poll_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    mail_retry_base_s: Annotated[float, Field(gt=0, le=3600)] = 10.0
    mail_retry_max_s: Annotated[float, Field(gt=0, le=86400)] = 1800.0
    mail_max_attempts: Annotated[int, Field(ge=1, le=1000)] = 40
    # a message being sent by a process that died is sent again after this many seconds
    mail_lease_s: Annotated[float, Field(ge=1, le=3600)] = 120.0
    # text messages: POSTed as signed JSON to this http(s) URL of an SMS provider's webhook
    # (cloud/sms/webhook.py says how a provider checks the signature). Unset: no provider, and
    # a user's SMS deliveries are recorded as not sent. The secret signs every request; it is
    # required with a URL, and never logged.
    sms_webhook_url: str | None = Field(default=None, max_length=2000, repr=False)
    sms_webhook_secret: str | None = Field(default=None, repr=False)
    sms_poll_s: Annotated[float, Field(gt=0, le=60)] = 1.0
    sms_timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    sms_retry_base_s: Annotated[float, Field(gt=0, le=3600)] = 15.0
    sms_retry_max_s: Annotated[float, Field(gt=0, le=86400)] = 900.0
    sms_max_attempts: Annotated[int, Field(ge=1, le=100)] = 6
    # a text not sent within this many seconds of when it could first go is given up: late news
    # of a power cut is worse than none
    sms_ttl_s: Annotated[float, Field(ge=60, le=7 * 86400)] = 6 * 3600.0
    # payments reported by a provider's webhook (POST /api/v1/payments/webhook, Razorpay's
    # format): the webhook secret set in the provider's dashboard, which keys the HMAC-SHA256 of
    # each request's body. Unset: the webhook answers 503 and records nothing. Never logged.
    payment_webhook_secret: str | None = Field(default=None, min_length=16, repr=False)
    # sign-up codes and password links asked for, per account (or e-mail) and per address,
    # within account_window_s
    account_requests_per_subject: Annotated[int, Field(ge=1, le=1000)] = 5
    account_requests_per_address: Annotated[int, Field(ge=1, le=100_000)] = 30
    account_window_s: Annotated[int, Field(ge=10, le=86400)] = 3600
