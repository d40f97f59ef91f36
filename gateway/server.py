"""The HTTP server protocol: uvicorn's h11 protocol, except that a request the HTTP parser
itself refuses (a NUL byte or other invalid character in a header, a malformed request
line or framing) gets the gateway's JSON error body instead of uvicorn's plain text."""
from __future__ import annotations

import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from gateway import errors
from gateway.errors import ApiError
from siyu_kit.ids import new_id


def bad_request_body(request_id: str) -> bytes:
    error = ApiError("INVALID_ARGUMENT", "the HTTP request is malformed", "MALFORMED_HTTP")
    return json.dumps(errors.body(error, request_id)).encode()


class JsonErrorH11Protocol(H11Protocol):
    def send_400_response(self, msg: str) -> None:
        if self.conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            # A response is already under way; all that is left is to end the connection.
            self.transport.close()
            return
        request_id = new_id("req")
        content = bad_request_body(request_id)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode()),
                   (b"x-request-id", request_id.encode()), (b"connection", b"close")]
        self.transport.write(self.conn.send(h11.Response(status_code=400, headers=headers, reason=b"Bad Request")))
        self.transport.write(self.conn.send(h11.Data(data=content)))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.transport.close()
