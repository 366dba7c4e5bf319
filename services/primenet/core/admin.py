"""The operator's bearer token for admin reads: refused when weak, compared in constant time."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from pydantic import SecretStr

from primenet.core.errors import ApiError

WEAK_TOKENS = {"admin", "changeme", "secret", "password", "prime", "token"}


def refuse_weak_token(token: SecretStr | None) -> SecretStr | None:
    """A settings validator: an admin token must be at least 16 characters and not a well-known default."""
    if token is not None:
        value = token.get_secret_value()
        if len(value) < 16 or value.lower() in WEAK_TOKENS:
            raise ValueError("admin_token must be at least 16 characters and not a well-known default")
    return token


def bearer(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None when there is none."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token if scheme.lower() == "bearer" and token else None


def require_admin(token: str | None, configured: SecretStr | None) -> None:
    """Raise the 401 that fits unless `token` is the configured admin token."""
    if configured is None:
        raise ApiError(401, "admin_disabled", "this service has no admin token configured")
    if token is None:
        raise ApiError(401, "admin_token_missing", "send Authorization: Bearer <admin token>")
    if not hmac.compare_digest(token.encode(), configured.get_secret_value().encode()):
        raise ApiError(401, "admin_token_invalid", "the bearer token is not the admin token")


def admin_request(request: Request) -> None:
    """A route dependency: the request must carry the app's admin token (`app.state.admin_token`)."""
    require_admin(bearer(request), request.app.state.admin_token)


AdminOnly = Annotated[None, Depends(admin_request)]


def is_admin(request: Request) -> bool:
    """Whether the request carries the app's admin token; never raises (for routes that only show more to admins)."""
    try:
        require_admin(bearer(request), getattr(request.app.state, "admin_token", None))
    except ApiError:
        return False
    return True
