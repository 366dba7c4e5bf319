"""One error shape for every service: `{"error": {"code", "message"}}` with a 4xx status.

Handlers here turn FastAPI's own failures (validation, unknown route, wrong method) into the same shape,
so a client never has to parse two formats and bad input never surfaces as a 5xx.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException


class PrimenetError(Exception):
    """The root of every error primenet raises on purpose: `except PrimenetError` catches all of them."""


class UpstreamUnavailableError(PrimenetError):
    """A service this one depends on (the chain's RPC) gave no usable answer; the request can be retried."""


class ApiError(PrimenetError):
    """A failure the client caused; rendered as a JSON error with its own stable code."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        headers: Mapping[str, str] | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers = dict(headers or {})
        self.details = details


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error}


def error_response(error: ApiError) -> JSONResponse:
    return JSONResponse(
        error_body(error.code, error.message, error.details), status_code=error.status, headers=error.headers
    )


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "body_too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def install_error_handlers(app: FastAPI) -> None:
    """Route every error path of `app` through the one JSON error shape."""

    async def on_api_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc)

    async def on_validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [
            {"loc": ".".join(str(part) for part in err.get("loc", ())), "msg": str(err.get("msg", ""))}
            for err in exc.errors()
        ]
        first = problems[0] if problems else {"loc": "", "msg": "invalid request"}
        message = f"{first['loc']}: {first['msg']}" if first["loc"] else first["msg"]
        return error_response(ApiError(422, "invalid_request", message, details=problems))

    async def on_http_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(ApiError(exc.status_code, code, str(exc.detail), headers=exc.headers))

    async def on_store_down(_: Request, exc: Exception) -> JSONResponse:
        # Our fault, not the client's: say so and let it retry, rather than a bare 500.
        return error_response(
            ApiError(
                503,
                "store_unavailable",
                "the service's store (Redis) is unreachable; retry shortly",
                headers={"Retry-After": "5"},
            )
        )

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(RedisConnectionError, on_store_down)
    app.add_exception_handler(RedisTimeoutError, on_store_down)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
