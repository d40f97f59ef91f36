"""structlog JSON logs. Request id, merchant and channel are bound per request through
contextvars, so every line of a request carries them."""
from __future__ import annotations

import functools
import logging
import re
import sys

import structlog


def configure(service: str, level: str = "INFO") -> None:
    logging.basicConfig(stream=sys.stderr, level=level, format="%(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_personal_data,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)


def get(name: str = "siyu"):
    return structlog.get_logger(name)


def mask_phone(phone: str) -> str:
    """138****8000: the only form a phone number may take in a log or a response."""
    if len(phone) < 7:
        return "****"
    return f"{phone[:3]}****{phone[-4:]}"


# Personal data and credentials never reach a log line (processors run on every event).
# Fields named for them are masked whatever they hold; in any other text, mainland mobile
# numbers are masked and bearer tokens and assertions (JWTs) replaced.
_SECRET_FIELDS = re.compile(r"(authorization|token|assertion|password|secret|api_key|cookie|address|receiver|"
                            r"consignee|id_card|phone|mobile)", re.IGNORECASE)
_PHONE = re.compile(r"(?<!\d)(?:\+?86)?(1[3-9]\d)(\d{4})(\d{4})(?!\d)")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*")
_KEEP = {"event", "level", "timestamp", "service", "request_id", "merchant_id", "channel", "method", "rpc",
         "client_address"}


def _scrub(value):
    if isinstance(value, str):
        if "eyJ" in value:
            value = _JWT.sub("[token]", value)
        return _PHONE.sub(lambda m: f"{m.group(1)}****{m.group(3)}", value)
    if isinstance(value, dict):
        return {k: _field(k, v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_scrub(v) for v in value]
    return value


@functools.lru_cache(maxsize=512)
def _secret_field(key: str) -> bool:
    return key not in _KEEP and _SECRET_FIELDS.search(key) is not None


def _field(key, value):
    if isinstance(key, str) and _secret_field(key) and value not in (None, "", 0):
        if "phone" in key.lower() and isinstance(value, str):
            return mask_phone(value)
        return "[redacted]"
    return _scrub(value)


def redact_personal_data(_logger, _method, event_dict: dict) -> dict:
    """The structlog processor that masks phones and drops tokens, addresses and secrets."""
    return {key: _field(key, value) for key, value in event_dict.items()}
