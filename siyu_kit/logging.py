"""structlog JSON logs. Request id, merchant and channel are bound per request through
contextvars, so every line of a request carries them."""
from __future__ import annotations

import logging
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
