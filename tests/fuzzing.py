"""schemathesis over a service's own OpenAPI, as the fuzz tests of every service run it: generated requests, signed
(and carrying the admin token) so that they get past authentication into validation and the handlers, must never
produce a 5xx, and every refusal comes in the one error shape with its code."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import requests
import schemathesis
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from primenet.core.auth import AUTH_HEADER, sign_request

CHAIN_ID = 31337


class SignedBy(requests.auth.AuthBase):
    """Signs each prepared request exactly as sent (path with query, body bytes); adds the admin token if given."""

    def __init__(self, account: LocalAccount, audience: str, *, token: str | None = None) -> None:
        self.account = account
        self.audience = audience
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        if self.token is not None:
            request.headers["Authorization"] = f"Bearer {self.token}"
        request.headers[AUTH_HEADER] = sign_request(
            self.account,
            method=str(request.method),
            path=str(request.path_url),
            body=body.encode() if isinstance(body, str) else body,
            audience=self.audience,
            chain_id=CHAIN_ID,
        )
        return request


def session(auth: requests.auth.AuthBase | None = None) -> requests.Session:
    made = requests.Session()
    made.auth = auth
    return made


@dataclass(frozen=True)
class Sent:
    label: str  # "METHOD /path/{template}"
    status: int
    code: str | None  # the error code of a refusal


def error_code(text: str) -> str | None:
    """The code of a `{"error": {"code", "message"}}` body; None for any other body."""
    try:
        return str(json.loads(text)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return None


def fuzz_every_operation(
    openapi: dict[str, Any],
    base_url: str,
    *,
    choices: Sequence[Any],
    prepare: Callable[[schemathesis.Case, Any], requests.Session],
    examples: int,
    after: Callable[[str, Any], None] | None = None,
) -> list[Sent]:
    """Send `examples` generated requests per operation; `prepare` may aim each case (it gets one of `choices`) and
    says which session sends it; `after` sees each (label, response). Fails at the first 5xx, or at a refusal without
    the error shape."""
    sent: list[Sent] = []
    for result in schemathesis.openapi.from_dict(openapi).get_all_operations():
        operation = result.ok()

        @settings(
            max_examples=examples,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.explicit, Phase.generate],  # report a failure as found; shrinking is slow here
        )
        @given(case=operation.as_strategy(), choice=st.sampled_from(list(choices)))
        def call(case: schemathesis.Case, choice: Any) -> None:
            sender = prepare(case, choice)
            response = case.call(base_url=base_url, session=sender, timeout=30)
            label = case.operation.label
            code = error_code(response.text) if response.status_code >= 400 else None
            sent.append(Sent(label, response.status_code, code))
            assert response.status_code < 500, f"{label} {case.query}: {response.status_code} {response.text}"
            assert response.status_code < 400 or code, f"{label}: {response.status_code} {response.text}"
            if after is not None:
                after(label, response)

        call()
    return sent
