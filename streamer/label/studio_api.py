"""The calls the bridge makes to Label Studio's REST API, retried with backoff.

Label Studio down, restarting or answering 5xx/429: the call waits (0.5 s doubling to 30 s) and
tries again until it succeeds or the bridge stops; meanwhile ``up`` is False and the bridge's
/readyz says not ready. Nothing is lost: the requests wait in Kafka, uncommitted. A 4xx other
than 429 is a mistake a retry cannot fix (a bad token, a config Label Studio refuses): it raises
:class:`LabelStudioError` with Label Studio's own explanation.

Tokens: a legacy API token is sent as ``Token <t>``; a personal access token (a JWT refresh
token) is exchanged at ``/api/token/refresh`` for an access token, sent as ``Bearer``, and
exchanged again when it expires.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp

log = logging.getLogger(__name__)

_BACKOFF_START = 0.5
_BACKOFF_MAX = 30.0
_RETRIED_STATUS = {408, 429, 500, 502, 503, 504}
PAGE_SIZE = 500


class LabelStudioError(RuntimeError):
    """Label Studio refused a call in a way retrying cannot fix (``status``: its HTTP status)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class MaybeDone(Exception):
    """A call that is not repeated blindly failed: Label Studio may or may not have acted."""


class BridgeStopped(Exception):
    """The bridge is stopping while a call waited for Label Studio."""


class LabelStudioClient:
    """One Label Studio at ``url``, authenticated by ``token``."""

    def __init__(self, url: str, token: str, stop: asyncio.Event, timeout: float = 30.0,
                 on_error: Any = None) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._stop = stop
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._access: str | None = None
        self._on_error = on_error  # called once per failed attempt (a metric)
        self.up = False
        self.last_error: str | None = None
        self.server_time: float | None = None  # Label Studio's clock (Date header) at the last call

    async def __aenter__(self) -> LabelStudioClient:
        self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self

    async def __aexit__(self, *_: Any) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def _personal(self) -> bool:
        return self._token.count(".") == 2  # a JWT: header.payload.signature

    async def _auth(self) -> str:
        if not self._personal:
            return f"Token {self._token}"
        if self._access is None:
            body = await self._once("POST", "/api/token/refresh", {"refresh": self._token}, auth=None)
            self._access = body["access"]
        return f"Bearer {self._access}"

    async def call(self, method: str, path: str, body: Any = None, params: dict | None = None,
                   once: bool = False) -> Any:
        """One API call, retried until Label Studio answers it (or raises LabelStudioError).

        ``once``: for a call that is not idempotent (an import): after a failure that may have
        happened after Label Studio acted (a timeout, a lost answer), wait the backoff and raise
        :class:`MaybeDone` instead of repeating it, so the caller can look before trying again.
        """
        delay = _BACKOFF_START
        while True:
            if self._stop.is_set():
                raise BridgeStopped
            try:
                result = await self._once(method, path, body, params=params, auth=await self._auth())
                if not self.up:
                    log.info("Label Studio at %s answers", self.url)
                self.up, self.last_error = True, None
                return result
            except _Retry as exc:
                if exc.expired_token:
                    self._access = None
                    continue
                self._failed(f"{method} {path}: {exc}", delay)
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._failed(f"{method} {path}: {type(exc).__name__} {exc}", delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=delay)
            if once:
                raise MaybeDone(self.last_error or "")
            delay = min(delay * 2, _BACKOFF_MAX)

    def _failed(self, error: str, delay: float) -> None:
        if self.up or self.last_error is None:
            log.warning("Label Studio at %s fails (%s); retrying every <= %.0f s, requests wait "
                        "in Kafka", self.url, error, _BACKOFF_MAX)
        self.up, self.last_error = False, error
        if self._on_error is not None:
            self._on_error()
        log.debug("retry in %.1f s: %s", delay, error)

    async def _once(self, method: str, path: str, body: Any, params: dict | None = None,
                    auth: str | None = None) -> Any:
        assert self._session is not None, "use `async with LabelStudioClient(...)`"
        headers = {"Authorization": auth} if auth else {}
        async with self._session.request(method, f"{self.url}{path}", json=body, params=params,
                                         headers=headers) as response:
            if (date := response.headers.get("Date")) is not None:
                self.server_time = parsedate_to_datetime(date).timestamp()
            text = await response.text()
            if response.status in _RETRIED_STATUS:
                raise _Retry(f"HTTP {response.status}")
            if response.status == 401 and self._personal and auth is not None:
                raise _Retry("access token expired", expired_token=True)
            if response.status >= 400:
                raise LabelStudioError(
                    f"Label Studio refused {method} {path}: HTTP {response.status} {text[:500]}"
                    + (" (check --label-studio-token)" if response.status in (401, 403) else ""),
                    status=response.status)
            return await response.json(content_type=None) if text else None

    # ------------------------------------------------------------------ the calls the bridge makes

    async def project(self, title: str) -> dict | None:
        """The project called ``title`` (the oldest if several), or None."""
        page = await self.call("GET", "/api/projects/", params={"title": title, "page_size": 100})
        matches = [p for p in page.get("results", []) if p.get("title") == title]
        return min(matches, key=lambda p: p["id"]) if matches else None

    async def create_project(self, title: str, label_config: str) -> dict:
        return await self.call("POST", "/api/projects/", {
            "title": title, "label_config": label_config, "show_skip_button": True,
            "description": "Label requests from streamer: each task is one item the model asked "
                           "about; sort by prediction score (low = uncertain)."})

    async def set_label_config(self, project_id: int, label_config: str) -> None:
        await self.call("PATCH", f"/api/projects/{project_id}/", {"label_config": label_config})

    async def import_tasks(self, project_id: int, tasks: list[dict]) -> None:
        """Create ``tasks``; raises MaybeDone when they may exist after all (see ``call``)."""
        await self.call("POST", f"/api/projects/{project_id}/import", tasks, once=True)

    async def tasks(self, project_id: int, updated_after: str | None = None,
                    fields: str = "all") -> AsyncIterator[dict]:
        """Every task of the project (updated after ``updated_after``, an ISO time), page by page."""
        params: dict[str, Any] = {"project": project_id, "fields": fields, "page_size": PAGE_SIZE}
        if updated_after is not None:
            params["query"] = _updated_after_query(updated_after)
        page = 1
        while True:
            body = await self.call("GET", "/api/tasks/", params={**params, "page": page})
            tasks = body.get("tasks", []) if isinstance(body, dict) else body
            for task in tasks:
                yield task
            if len(tasks) < PAGE_SIZE:
                return
            page += 1

    async def set_task_meta(self, task_id: int, meta: dict) -> None:
        await self.call("PATCH", f"/api/tasks/{task_id}/", {"meta": meta})

    async def user_name(self, user_id: int) -> str:
        user = await self.call("GET", f"/api/users/{user_id}/")
        return user.get("email") or user.get("username") or f"user-{user_id}"

    async def ensure_webhook(self, project_id: int, url: str, actions: list[str]) -> None:
        hooks = await self.call("GET", "/api/webhooks/", params={"project": project_id})
        if any(h.get("url") == url and h.get("project") == project_id for h in hooks or []):
            return
        await self.call("POST", "/api/webhooks/", {"project": project_id, "url": url,
                                                  "send_payload": False, "actions": actions,
                                                  "send_for_all_actions": False, "is_active": True})


class _Retry(Exception):
    def __init__(self, message: str, expired_token: bool = False) -> None:
        super().__init__(message)
        self.expired_token = expired_token


def _updated_after_query(when: str) -> str:
    import orjson

    return orjson.dumps({"filters": {"conjunction": "and", "items": [
        {"filter": "filter:tasks:updated_at", "operator": "greater", "type": "Datetime",
         "value": when}]}}).decode()


def iso(timestamp: float) -> str:
    """A Unix time as Label Studio writes times (UTC, microseconds, Z)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + f".{int(timestamp % 1 * 1e6):06d}Z"
