"""Typed settings from SIYU_* environment variables, with defaults for the embedded mode."""
from __future__ import annotations

import os
from dataclasses import dataclass, field

SERVICE_NAMES = ("catalog", "member", "order", "content")
DEFAULT_GRPC_PORTS = {"catalog": 7051, "member": 7052, "order": 7053, "content": 7054}


def _env(name: str, default: str) -> str:
    return os.environ.get(f"SIYU_{name}", default)


def _env_int(name: str, default: int) -> int:
    raw = _env(name, str(default))
    try:
        return int(raw)
    except ValueError as exc:
        raise ValueError(f"SIYU_{name} must be an integer, got {raw!r}") from exc


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
    db_threads: int = 16
    metrics_port: int = 0
    log_level: str = "INFO"
    # Poll interval of the outbox relay when it has not been kicked.
    relay_interval_s: float = 0.5
    # Consumer redeliveries before a message goes to the dead-letter stream.
    max_deliver: int = 5

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
        db_threads=_env_int("DB_THREADS", 16),
        metrics_port=_env_int("METRICS_PORT", 0),
        log_level=_env("LOG_LEVEL", "INFO"),
        relay_interval_s=float(_env("RELAY_INTERVAL_S", "0.5")),
        max_deliver=_env_int("MAX_DELIVER", 5),
    )
