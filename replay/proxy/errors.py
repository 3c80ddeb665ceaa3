"""OpenAI-style error responses the proxy sends to clients.

Every message here is generic on purpose (CONTRACT.md §5, blinding): none names an experiment,
variant, version, checkpoint, upstream URL or key.
"""

from __future__ import annotations

import orjson
from starlette.responses import Response

JSON_MEDIA_TYPE = "application/json"


class ProxyError(Exception):
    """A request the proxy answers itself with ``status`` and an OpenAI-style error body."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message

    def body(self) -> bytes:
        return error_body(self.error_type, self.message)

    def response(self) -> Response:
        return Response(self.body(), status_code=self.status, media_type=JSON_MEDIA_TYPE)


def error_body(error_type: str, message: str) -> bytes:
    """``{"error": {"type", "message", "code"}}`` as JSON bytes."""
    return orjson.dumps({"error": {"type": error_type, "message": message, "code": error_type}})


def model_not_found(model: str) -> ProxyError:
    """404 for an unknown model and, indistinguishably, for a paused experiment."""
    return ProxyError(404, "model_not_found", f"The model {model!r} does not exist or is not available.")


def temporarily_unavailable() -> ProxyError:
    return ProxyError(503, "temporarily_unavailable", "The model is temporarily unavailable; retry later.")


def data_collection_required() -> ProxyError:
    return ProxyError(
        400,
        "data_collection_required",
        "This preview model requires data collection; remove provider.data_collection=deny and provider.zdr.",
    )


def invalid_request(message: str) -> ProxyError:
    return ProxyError(400, "invalid_request_error", message)


def body_too_large(limit: int) -> ProxyError:
    return ProxyError(413, "request_too_large", f"The request body is larger than {limit} bytes.")


def upstream_failed() -> ProxyError:
    return ProxyError(502, "upstream_error", "The model provider failed to answer; retry later.")


def upstream_timeout() -> ProxyError:
    return ProxyError(504, "upstream_timeout", "The model provider did not answer in time; retry later.")


def upstream_rate_limited() -> ProxyError:
    return ProxyError(429, "rate_limit_exceeded", "The model provider is rate limiting; retry later.")


def upstream_rejected() -> ProxyError:
    return ProxyError(400, "invalid_request_error", "The model provider rejected the request.")
