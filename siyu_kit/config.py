"""Typed settings from SIYU_* environment variables, with defaults for the embedded mode."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

SERVICE_NAMES = ("catalog", "member", "order", "content")
# base64 of "siyu-dev-only-data-key-change-me": development and tests only.
DEV_DATA_KEY = "dev:c2l5dS1kZXYtb25seS1kYXRhLWtleS1jaGFuZ2UtbWU="
# The same development key as the look-up key, so phones indexed while look-ups took their
# key from the data key are still found: development and tests only.
DEV_LOOKUP_KEY = "c2l5dS1kZXYtb25seS1kYXRhLWtleS1jaGFuZ2UtbWU="
# The platform operator's token in development and tests; set SIYU_PLATFORM_TOKEN in production.
DEV_PLATFORM_TOKEN = "dev-only-platform-token-change-me"
DEFAULT_GRPC_PORTS = {"catalog": 7051, "member": 7052, "order": 7053, "content": 7054}


def _env(name: str, default: str) -> str:
    return os.environ.get(f"SIYU_{name}", default)


def _env_int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"SIYU_{name} must be an integer, got {raw!r}") from exc


def _env_float(name: str, default: float) -> float:
    raw = _env(name, str(default))
    try:
        return float(raw)
    except ValueError as exc:
        raise ValueError(f"SIYU_{name} must be a number, got {raw!r}") from exc


def env_count(name: str, default: int) -> int:
    """A whole number from SIYU_<name>, for a service's own limits."""
    return _env_int(name, default)


def env_seconds(name: str, default: float) -> float:
    """A positive interval in seconds from SIYU_<name>, for a service's own jobs."""
    raw = _env(name, str(default))
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"SIYU_{name} must be a number, got {raw!r}") from exc
    if value <= 0:
        raise ValueError(f"SIYU_{name} must be positive")
    return value


@dataclass(frozen=True)
class Settings:
    service: str
    grpc_host: str
    grpc_port: int
    mongodb_uri: str
    mongodb_db: str
    nats_url: str
    # host:port of each service's gRPC server, for clients
    service_addrs: dict[str, str] = field(default_factory=dict)
    jwt_secret: str = ""
    sandbox_payment_secret: str = ""
    # Encryption at rest (siyu_kit.sealing): `kid:base64key[,…]`, the first one current.
    data_key: str = ""
    # The key of the keyed hashes that find protected values (a verified phone's member):
    # base64 of 32 bytes. Independent of data_key, so rotating that changes no look-up.
    lookup_key: str = ""
    # WeChat Pay API v3: where its API is (the local stand-in in tests and `make run`), and
    # the public URL of the gateway's notify route (the merchant id is appended).
    wechat_pay_base_url: str = "https://api.mch.weixin.qq.com"
    wechat_pay_notify_url: str = "http://127.0.0.1:8080/v1/payments/wechat/notify"
    db_threads: int = 16
    metrics_port: int = 0
    log_level: str = "INFO"
    # Poll interval of the outbox relay when it has not been kicked.
    relay_interval_s: float = 0.5
    # Consumer redeliveries before a message goes to the dead-letter stream.
    max_deliver: int = 5
    # WeChat's API (login, phone number); the local stand-in's URL in tests and `make run`.
    wechat_base_url: str = "https://api.weixin.qq.com"

    def addr(self, service: str) -> str:
        return self.service_addrs[service]


def load(service: str) -> Settings:
    addrs = {
        name: _env(f"{name.upper()}_ADDR", f"127.0.0.1:{port}")
        for name, port in DEFAULT_GRPC_PORTS.items()
    }
    own_port = int(addrs[service].rsplit(":", 1)[1]) if service in addrs else 0
    return Settings(
        service=service,
        grpc_host=_env("GRPC_HOST", "127.0.0.1"),
        grpc_port=_env_int("GRPC_PORT", own_port),
        mongodb_uri=_env("MONGODB_URI", "mongodb://127.0.0.1:27017"),
        mongodb_db=_env("MONGODB_DB_PREFIX", "siyu_") + service,
        nats_url=_env("NATS_URL", "nats://127.0.0.1:4222"),
        service_addrs=addrs,
        jwt_secret=_env("JWT_SECRET", "dev-only-jwt-secret-change-me-in-production"),
        sandbox_payment_secret=_env("SANDBOX_PAYMENT_SECRET", "dev-only-sandbox-payment-secret"),
        data_key=_env("DATA_KEY", DEV_DATA_KEY),
        lookup_key=_env("LOOKUP_KEY", DEV_LOOKUP_KEY),
        wechat_pay_base_url=_env("WECHAT_PAY_BASE_URL", "https://api.mch.weixin.qq.com"),
        wechat_pay_notify_url=_env("WECHAT_PAY_NOTIFY_URL", "http://127.0.0.1:8080/v1/payments/wechat/notify"),
        db_threads=_env_int("DB_THREADS", 16),
        metrics_port=_env_int("METRICS_PORT", 0),
        log_level=_env("LOG_LEVEL", "INFO"),
        relay_interval_s=float(_env("RELAY_INTERVAL_S", "0.5")),
        max_deliver=_env_int("MAX_DELIVER", 5),
        wechat_base_url=_env("WECHAT_BASE_URL", "https://api.weixin.qq.com").rstrip("/"),
    )


@dataclass(frozen=True)
class GatewaySettings:
    """The HTTP gateway's settings: where it listens, what it allows, and the services'
    addresses, token secret and log level it shares with them."""
    host: str
    port: int
    cors_origins: tuple[str, ...]
    key_rps: float
    member_rps: float
    staff_rps: float
    # Channel-key look-ups (keys not cached, e.g. unknown ones) one client address may cause.
    key_lookup_rps: float
    # How long a token subject's version is trusted before it is asked again.
    token_version_ttl_s: float
    # Proxies in front of the gateway that append to X-Forwarded-For (0: use the peer address).
    forwarded_hops: int
    deadline_s: float
    health_timeout_s: float
    service_addrs: dict
    jwt_secret: str
    log_level: str
    # The platform operator's bearer token (onboarding merchants); empty turns that API off.
    platform_token: str = ""

    @classmethod
    def load(cls) -> "GatewaySettings":
        base = load("gateway")
        origins = tuple(o.strip() for o in _env("CORS_ORIGINS", "*").split(",") if o.strip())
        return cls(
            host=_env("GATEWAY_HOST", "127.0.0.1"),
            port=_env_int("GATEWAY_PORT", 8080),
            cors_origins=origins or ("*",),
            key_rps=_env_float("RATE_LIMIT_KEY_RPS", 200),
            member_rps=_env_float("RATE_LIMIT_MEMBER_RPS", 20),
            staff_rps=_env_float("RATE_LIMIT_STAFF_RPS", 30),
            key_lookup_rps=_env_float("RATE_LIMIT_KEY_LOOKUP_RPS", 10),
            token_version_ttl_s=_env_float("TOKEN_VERSION_TTL_S", 2),
            forwarded_hops=_env_int("GATEWAY_FORWARDED_HOPS", 0),
            deadline_s=_env_float("GATEWAY_DEADLINE_S", 10),
            health_timeout_s=_env_float("GATEWAY_HEALTH_TIMEOUT_S", 2),
            service_addrs=dict(base.service_addrs),
            jwt_secret=base.jwt_secret,
            log_level=base.log_level,
            platform_token=_env("PLATFORM_TOKEN", DEV_PLATFORM_TOKEN),
        )


# ---- profiles: development defaults never reach production ------------------------------
PROFILES = ("dev", "production")
DEV_JWT_SECRET = "dev-only-jwt-secret-change-me-in-production"
DEV_SANDBOX_PAYMENT_SECRET = "dev-only-sandbox-payment-secret"


def profile() -> str:
    """SIYU_PROFILE: `dev` (tests, `make run`, `make bench`) or `production`, the default,
    so a deployment that forgets the variable is held to the production rules."""
    value = _env("PROFILE", "production").strip() or "production"
    if value not in PROFILES:
        raise ValueError(f"SIYU_PROFILE must be one of {', '.join(PROFILES)}, got {value!r}")
    return value


def dev_secrets_in_use() -> list[str]:
    """The secret settings that still hold their development default (or are unset)."""
    from siyu_kit import trust  # the kit's trust module reads this module's profile

    defaults = {"JWT_SECRET": DEV_JWT_SECRET, "DATA_KEY": DEV_DATA_KEY, "LOOKUP_KEY": DEV_LOOKUP_KEY,
                "PLATFORM_TOKEN": DEV_PLATFORM_TOKEN, "SANDBOX_PAYMENT_SECRET": DEV_SANDBOX_PAYMENT_SECRET,
                "INTERNAL_KEY": trust.DEV_INTERNAL_KEY}
    if _env("JWT_PRIVATE_KEY", "") or _env("JWT_JWKS", ""):
        # Tokens are RS256: the shared HS256 secret signs and verifies nothing.
        defaults.pop("JWT_SECRET")
    found = []
    for name, default in defaults.items():
        # A key list (kid:key,…) that still holds the development key, even behind a new
        # one, still opens or verifies what the development key made.
        dev = {default, default.partition(":")[2]} - {""}
        entries = [e.strip() for e in _env(name, default).split(",")] if "KEY" in name else [_env(name, default)]
        if any(e in dev or e.partition(":")[2] in dev for e in entries):
            found.append(f"SIYU_{name}")
    return found


def refuse_dev_secrets(process: str) -> None:
    """In the production profile, exit (status 78, configuration error) with one log line
    naming every secret that still has its development value."""
    try:
        current = profile()
    except ValueError as error:
        _refuse(process, str(error), [])
    if current != "production":
        return
    found = dev_secrets_in_use()
    if found:
        _refuse(process, "development secrets refused in the production profile: set "
                + ", ".join(found) + " (or SIYU_PROFILE=dev for development)", found)


def _refuse(process: str, message: str, variables: list[str]) -> None:
    import sys

    import structlog

    structlog.get_logger("siyu.config").critical("config.refused", process=process, variables=variables,
                                                 message=message)
    sys.exit(78)
