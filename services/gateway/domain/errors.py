"""Errors in OpenAI's shape, and the router's outcomes mapped to them (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ApiError(Exception):
    """An error answered as `{"error": {"message", "type", "param", "code"}}` with its HTTP status."""

    status: int
    message: str
    type: str
    code: str | None = None
    param: str | None = None
    retry_after_s: int | None = None
    retryable: bool = True

    def body(self) -> dict[str, Any]:
        """The JSON body OpenAI's clients parse."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def headers(self) -> dict[str, str]:
        """`Retry-After` on throttling; `x-should-retry: false` where trying again cannot help."""
        headers = {}
        if self.retry_after_s is not None:
            headers["retry-after"] = str(self.retry_after_s)
        if not self.retryable:
            headers["x-should-retry"] = "false"
        return headers


def invalid(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    """400: the request itself is wrong; sending it again gives the same answer."""
    return ApiError(400, message, "invalid_request_error", code, param, retryable=False)


def unprocessable(message: str, param: str | None = None) -> ApiError:
    """422: well-formed JSON whose fields do not validate."""
    return ApiError(422, message, "invalid_request_error", "invalid_value", param, retryable=False)


def unauthorized(message: str, code: str = "invalid_api_key") -> ApiError:
    """401: no key, an unknown, revoked or expired key."""
    return ApiError(401, message, "invalid_request_error", code, retryable=False)


def forbidden(message: str, code: str = "model_not_permitted", param: str | None = "model") -> ApiError:
    """403: the key is valid but may not use this model."""
    return ApiError(403, message, "permission_error", code, param, retryable=False)


def model_not_found(model: str) -> ApiError:
    """404: a model the platform does not serve."""
    return ApiError(
        404, f"The model `{model}` does not exist", "invalid_request_error", "model_not_found", "model", None, False
    )


def rate_limited(message: str, retry_after_s: int, code: str = "rate_limit_exceeded") -> ApiError:
    """429 with Retry-After: a limit of the key or its tenant is reached."""
    return ApiError(
        429, message, "rate_limit_exceeded" if code != "insufficient_quota" else code, code, None, retry_after_s
    )


def budget_exceeded(message: str, retry_after_s: int) -> ApiError:
    """429 `insufficient_quota` (what the SDK's users know from OpenAI): the monthly budget is spent; no retry helps."""
    return ApiError(429, message, "insufficient_quota", "budget_exceeded", None, retry_after_s, retryable=False)


def timed_out(after_s: float) -> ApiError:
    """504: no result within the request's deadline."""
    return ApiError(504, f"The model did not answer within {after_s:g} s", "timeout", "timeout")


def unavailable(message: str, code: str = "service_unavailable") -> ApiError:
    """503: the gateway cannot take requests now (starting, broker down)."""
    return ApiError(503, message, "server_error", code, retry_after_s=1)


def from_result(status: str, reason: str | None, model: str) -> ApiError | None:
    """The router's `rejected` / `failed` outcome as a client-facing error; None for `ok`."""
    if status == "ok":
        return None
    text = reason or status
    if status == "failed":
        if text.startswith("result too large"):
            return ApiError(
                500,
                f"The completion was too large to return: {text}",
                "server_error",
                "result_too_large",
                retryable=False,
            )
        return ApiError(502, f"The model failed on every server tried: {text}", "server_error", "upstream_failed")
    return _rejection(text, model)


def _rejection(reason: str, model: str) -> ApiError:
    """A `rejected` reason (docs/router.md's list) as the error a client can act on."""
    if reason.startswith("unknown model"):
        return model_not_found(model)
    if reason.startswith("max_tokens"):
        return ApiError(400, reason, "invalid_request_error", "context_length_exceeded", "max_tokens", retryable=False)
    if reason.startswith("invalid request"):
        return invalid(reason)
    if reason.startswith(("deadline", "no server", "over capacity")):
        return ApiError(
            503,
            f"The model is overloaded or not yet placed: {reason}",
            "server_error",
            "model_overloaded",
            retry_after_s=1,
        )
    if reason.startswith("allocation failed"):
        return ApiError(
            503,
            f"No capacity could be placed for `{model}`: {reason}",
            "server_error",
            "model_unavailable",
            retry_after_s=30,
        )
    if reason.startswith("reply_topic"):
        return ApiError(
            500, f"The gateway is misconfigured: {reason}", "server_error", "gateway_misconfigured", retryable=False
        )
    return ApiError(500, reason, "server_error", "rejected", retryable=False)
