"""The orchestrator's admin API as a client sees it: one method per route, each answer a typed view.

The views are the orchestrator's own models (`primenet.orchestrator.models`), so `view.model_dump(mode="json")`
is the JSON the orchestrator sent. Every failure is one of two exceptions: `RefusedError` (a 4xx: the orchestrator
understood and said no) or `UnusableError` (it could not be asked: a malformed URL, unreachable, timed out, a 5xx,
or an answer that is not the orchestrator's).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ValidationError

from primenet.core.errors import PrimenetError
from primenet.orchestrator.models import (
    NodeList,
    NodeLogs,
    NodeView,
    StoreConfirmed,
    StoreState,
    TaskDeleted,
    TaskList,
    TaskView,
)

View = TypeVar("View", bound=BaseModel)


class OrchestratorClientError(PrimenetError):
    """The root of what `OrchestratorClient` raises."""


class RefusedError(OrchestratorClientError):
    """The orchestrator answered 4xx: it understood and said no."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message


class UnusableError(OrchestratorClientError):
    """The orchestrator could not be asked: a malformed URL, unreachable, timed out, 5xx, or not an orchestrator."""


def error_of(response: httpx.Response) -> tuple[str, str]:
    """The `{"error": {"code", "message"}}` of a refusal; a readable stand-in when the body is something else."""
    try:
        error = response.json().get("error")
        return str(error["code"]), str(error["message"])
    except (ValueError, AttributeError, KeyError, TypeError):
        text = response.text.strip().replace("\n", " ")[:200]
        return f"http_{response.status_code}", text or response.reason_phrase


class OrchestratorClient:
    """The admin API (Bearer `token`), one call per method; use it as a context manager to close its connections."""

    def __init__(
        self, url: str, token: str, *, timeout_s: float = 30.0, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url = url.rstrip("/")
        try:
            self._http = httpx.Client(
                base_url=self.url,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                timeout=timeout_s,
                transport=transport,
            )
        except httpx.InvalidURL as exc:
            raise UnusableError(f"{url!r} is not a URL: {exc}") from None

    def __enter__(self) -> OrchestratorClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, view: type[View], method: str, path: str, **kwargs: Any) -> View:
        """One call; its answer read as `view`."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise UnusableError(f"the orchestrator at {self.url} did not answer {method} {path} in time") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise UnusableError(f"cannot reach the orchestrator at {self.url}: {type(exc).__name__}: {exc}") from None
        if 400 <= response.status_code < 500:
            code, message = error_of(response)
            raise RefusedError(response.status_code, code, message)
        if response.status_code >= 500:
            code, message = error_of(response)
            raise UnusableError(f"the orchestrator could not do it: {code}: {message} (HTTP {response.status_code})")
        try:
            body = response.json()
        except ValueError:
            raise UnusableError(f"{self.url} answered {method} {path} with something that is not JSON") from None
        if not isinstance(body, dict):
            raise UnusableError(f"{self.url} answered {method} {path} with JSON that is not an object")
        try:
            return view.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise UnusableError(
                f"{self.url} answered {method} {path} with JSON that is not a {view.__name__}: {where}: {first['msg']}"
            ) from None

    def nodes(self) -> NodeList:
        return self.request(NodeList, "GET", "/nodes")

    def node(self, address: str) -> NodeView:
        return self.request(NodeView, "GET", f"/nodes/{quote(address, safe='')}")

    def logs(self, address: str, tail: int) -> NodeLogs:
        return self.request(NodeLogs, "GET", f"/nodes/{quote(address, safe='')}/logs", params={"tail": tail})

    def create_task(self, body: Mapping[str, Any]) -> TaskView:
        """`body` is a `TaskRequest` as JSON, sent as given: the orchestrator checks it and names what is wrong."""
        return self.request(TaskView, "POST", "/tasks", json=dict(body))

    def tasks(self) -> TaskList:
        return self.request(TaskList, "GET", "/tasks")

    def task(self, ref: str) -> TaskView:
        """A task by id, or else by its (unique) name."""
        try:
            return self.request(TaskView, "GET", f"/tasks/{quote(ref, safe='')}")
        except RefusedError as exc:
            if exc.status != 404:
                raise
            for task in self.tasks().tasks:
                if task.name == ref:
                    return task
            raise

    def delete_task(self, task_id: str) -> TaskDeleted:
        return self.request(TaskDeleted, "DELETE", f"/tasks/{quote(task_id, safe='')}")

    def store(self) -> StoreState:
        return self.request(StoreState, "GET", "/store")

    def confirm_store(self) -> StoreConfirmed:
        """Ends the store-lost hold (`orchestrator.guard`): nodes without an assignment in the store lose their task."""
        return self.request(StoreConfirmed, "POST", "/store/confirm")
