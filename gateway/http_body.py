"""RPCs that answer a file: a response of type google.api.HttpBody goes out as its `data`,
raw, with its `content_type`; a CSV goes out as an attachment named after the RPC and the
request's values (ExportSettlementStatement{day: "2026-12-01"} →
settlement-statement-2026-12-01.csv)."""
from __future__ import annotations

import re

from starlette.responses import Response

HTTP_BODY = "google.api.HttpBody"
DEFAULT_MEDIA_TYPE = "application/octet-stream"
ATTACHED = {"text/csv": "csv"}
_VERBS = ("Export", "Download", "Get")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def is_http_body(message_descriptor) -> bool:
    return message_descriptor.full_name == HTTP_BODY


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _kebab(name: str) -> str:
    for verb in _VERBS:
        if name.startswith(verb) and len(name) > len(verb):
            name = name[len(verb):]
            break
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


def attachment_name(method_name: str, request, extension: str) -> str:
    """The RPC's name without its verb, then each set string field of the request (in field
    order), made safe for a file name."""
    parts = [_kebab(method_name)]
    for fd, value in request.ListFields():
        if isinstance(value, str) and value:
            parts.append(_UNSAFE.sub("_", value).strip("._-"))
    return "-".join(p for p in parts if p)[:120] + f".{extension}"


def response(reply, method_name: str, request) -> Response:
    content_type = reply.content_type or DEFAULT_MEDIA_TYPE
    headers = {}
    extension = ATTACHED.get(media_type(content_type))
    if extension:
        headers["Content-Disposition"] = f'attachment; filename="{attachment_name(method_name, request, extension)}"'
    return Response(reply.data, media_type=content_type, headers=headers)


def documented_media_type(description: str) -> str:
    """The media type the OpenAPI document states for an RPC answering a file: CSV when its
    description says so."""
    return "text/csv" if re.search(r"\bCSV\b", description) else DEFAULT_MEDIA_TYPE
