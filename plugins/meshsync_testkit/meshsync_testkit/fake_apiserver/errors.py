"""API errors as kube-apiserver reports them: a ``Status`` object with code, reason and message.

Every failure the fake server returns goes through :class:`ApiError`, so HTTP handlers and the
programmatic API (``FakeApiServer.create`` ...) agree on one error shape.
"""

from __future__ import annotations

from typing import Any

#: The ``reason`` kube-apiserver uses for each HTTP status code (``metav1.StatusReason``).
REASONS: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


class ApiError(Exception):
    """A failed API call; :meth:`status` is the ``Status`` body the server sends."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details
        self.metadata = metadata

    def status(self) -> dict[str, Any]:
        body = status_body(self.code, self.message, self.reason, self.details)
        if self.metadata:
            body["metadata"] = self.metadata
        return body


def status_body(
    code: int, message: str, reason: str | None = None, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A failure ``Status`` exactly as kube-apiserver spells it."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason or REASONS.get(code, "Unknown"),
        "code": code,
    }
    if details:
        body["details"] = {k: v for k, v in details.items() if v is not None}
    return body


def not_found(plural: str, name: str, group: str = "") -> ApiError:
    what = f"{plural}.{group}" if group else plural
    return ApiError(
        404,
        f'{what} "{name}" not found',
        details={"name": name, "group": group or None, "kind": plural},
    )


def already_exists(plural: str, name: str, group: str = "") -> ApiError:
    what = f"{plural}.{group}" if group else plural
    return ApiError(
        409,
        f'{what} "{name}" already exists',
        reason="AlreadyExists",
        details={"name": name, "group": group or None, "kind": plural},
    )


def conflict(plural: str, name: str, group: str = "") -> ApiError:
    what = f"{plural}.{group}" if group else plural
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {what} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        reason="Conflict",
        details={"name": name, "group": group or None, "kind": plural},
    )


def expired(message: str, continue_token: str = "") -> ApiError:
    """410 Expired; for an expired continue token, kube offers one that goes on inconsistently
    (from the same key, at the newest resourceVersion) in the Status metadata."""
    metadata = {"continue": continue_token} if continue_token else None
    return ApiError(410, message, reason="Expired", metadata=metadata)


def bad_request(message: str) -> ApiError:
    return ApiError(400, message, reason="BadRequest")


def watch_list_forbidden() -> ApiError:
    """kube-apiserver's answer to ``sendInitialEvents`` with the WatchList feature gate off."""
    why = (
        "Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate "
        "is enabled"
    )
    return ApiError(
        422,
        f'ListOptions.meta.k8s.io "" is invalid: sendInitialEvents: {why}',
        reason="Invalid",
        details={
            "group": "meta.k8s.io",
            "kind": "ListOptions",
            "causes": [
                {"reason": "FieldValueForbidden", "message": why, "field": "sendInitialEvents"}
            ],
        },
    )
