"""A small Salesforce Bulk API 2.0 ingest client: upsert Leads by an external id from CSV
(contract §11 of ``../shared/contracts/crm-wire-contract.md``), plus the REST query the sync
uses to read back what a crashed run left in flight.

Why not ``simple-salesforce``: the sync needs only the ingest job life cycle and one query,
needs per-call retries with backoff on 5xx, timeouts and dropped connections like the HubSpot
client, and must be shareable between sender threads; the job calls are a handful of plain
HTTP requests. Authentication (the OAuth flow that yields ``instance_url`` and an access token)
is the deployment's business: the client takes both.
"""

from __future__ import annotations

import csv
import io
import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger(__name__)
API_VERSION = "60.0"
RETRY_STATUSES = frozenset({500, 502, 503, 504})
TERMINAL = frozenset({"JobComplete", "Failed", "Aborted"})


class SalesforceError(RuntimeError):
    """A refused call, a failed job, or a call that kept failing."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"Salesforce {status} {code}: {message}")
        self.status, self.code = status, code


@dataclass
class JobOutcome:
    """A finished ingest job: rows written, rows refused with their ``sf__Error``, rows the
    org never processed (job failed or aborted part-way)."""

    job_id: str
    state: str
    successful: list[dict[str, str]] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)
    unprocessed: list[dict[str, str]] = field(default_factory=list)
    error_message: str | None = None


class SalesforceBulkClient:
    """Bulk API 2.0 over HTTP with bearer auth; safe to share between threads."""

    def __init__(
        self,
        instance_url: str,
        token: str,
        *,
        api_version: str = API_VERSION,
        timeout: float = 60.0,
        max_attempts: int = 6,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        poll_interval: float = 0.2,
        poll_cap: float = 5.0,
        job_timeout: float = 1800.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not token:
            raise ValueError("a Salesforce access token is required")
        self._http = httpx.Client(
            base_url=instance_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
        )
        self.base = f"/services/data/v{api_version}"
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.poll_interval = poll_interval
        self.poll_cap = poll_cap
        self.job_timeout = job_timeout
        self._sleep = sleep
        self._lock = threading.Lock()
        self.requests = 0
        self.retries = 0

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SalesforceBulkClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _count(self, *, requests: int = 0, retries: int = 0) -> None:
        with self._lock:
            self.requests += requests
            self.retries += retries

    def request(
        self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any
    ) -> httpx.Response:
        """One call, retrying 5xx, timeouts and dropped connections with full-jitter backoff."""
        problem = ""
        for attempt in range(self.max_attempts):
            self._count(requests=1)
            try:
                response = self._http.request(method, self.base + path, **kwargs)
            except (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError) as exc:
                problem = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code in ok:
                    return response
                if response.status_code not in RETRY_STATUSES:
                    raise _error_from(response)
                problem = f"HTTP {response.status_code}"
            if attempt + 1 < self.max_attempts:
                self._count(retries=1)
                delay = random.uniform(0, min(self.backoff_cap, self.backoff_base * 2**attempt))  # noqa: S311
                log.warning("%s %s failed (%s); retry in %.1fs", method, path, problem, delay)
                self._sleep(delay)
        raise SalesforceError(0, "UNAVAILABLE", f"{method} {path}: {problem} after retries")

    # ------------------------------------------------------------------ ingest
    def upsert(self, object_name: str, external_id: str, rows: list[dict[str, str]]) -> JobOutcome:
        """One ingest job: create, upload the rows as CSV, close, poll until it ends, and read
        its results. ``""`` leaves a field as it is; ``#N/A`` sets it to null."""
        columns = list(dict.fromkeys(name for row in rows for name in row))
        if external_id not in columns:
            raise ValueError(f"every row needs the external id {external_id}")
        job = self.request(
            "POST",
            "/jobs/ingest",
            json={
                "object": object_name,
                "operation": "upsert",
                "externalIdFieldName": external_id,
                "contentType": "CSV",
                "columnDelimiter": "COMMA",
                "lineEnding": "LF",
            },
        ).json()
        job_id = str(job["id"])
        try:
            self.request(
                "PUT",
                f"/jobs/ingest/{job_id}/batches",
                ok=(201,),
                content=_to_csv(columns, rows).encode(),
                headers={"Content-Type": "text/csv"},
            )
            self.request("PATCH", f"/jobs/ingest/{job_id}", json={"state": "UploadComplete"})
        except BaseException:
            self._abort(job_id)
            raise
        info = self._wait(job_id)
        outcome = JobOutcome(job_id, str(info["state"]), error_message=info.get("errorMessage"))
        if outcome.state == "JobComplete":
            outcome.successful = self._results(job_id, "successfulResults")
            outcome.failed = self._results(job_id, "failedResults")
        outcome.unprocessed = (
            self._results(job_id, "unprocessedrecords") if outcome.state != "JobComplete" else []
        )
        return outcome

    def _wait(self, job_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.job_timeout
        interval = self.poll_interval
        while True:
            info = dict(self.request("GET", f"/jobs/ingest/{job_id}").json())
            if info.get("state") in TERMINAL:
                return info
            if time.monotonic() > deadline:
                raise SalesforceError(0, "TIMEOUT", f"ingest job {job_id} still {info['state']}")
            self._sleep(interval)
            interval = min(self.poll_cap, interval * 1.5)

    def _abort(self, job_id: str) -> None:
        try:
            self.request("PATCH", f"/jobs/ingest/{job_id}", json={"state": "Aborted"})
        except SalesforceError as exc:
            log.warning("could not abort ingest job %s: %s", job_id, exc)

    def _results(self, job_id: str, kind: str) -> list[dict[str, str]]:
        text = self.request("GET", f"/jobs/ingest/{job_id}/{kind}/").text
        return list(csv.DictReader(io.StringIO(text)))

    # ------------------------------------------------------------------ query
    def lead_fields(self) -> dict[str, str]:
        """The Lead object's fields (API name -> type), from ``describe``."""
        answer = self.request("GET", "/sobjects/Lead/describe").json()
        return {str(f["name"]): str(f.get("type", "")) for f in answer.get("fields", [])}

    def leads_by_key(
        self, external_id: str, keys: list[str], fields: list[str]
    ) -> dict[str, dict[str, Any]]:
        """The Leads with these external ids (``SELECT .. WHERE key IN (..)``), by key."""
        quoted = ", ".join("'" + k.replace("\\", "\\\\").replace("'", "\\'") + "'" for k in keys)
        columns = ", ".join([external_id, *fields])
        soql = f"SELECT {columns} FROM Lead WHERE {external_id} IN ({quoted})"
        answer = self.request("GET", "/query", params={"q": soql}).json()
        return {str(r[external_id]): r for r in answer.get("records", [])}


def _to_csv(columns: list[str], rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n", restval="")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _error_from(response: httpx.Response) -> SalesforceError:
    try:
        body = response.json()
    except ValueError:
        return SalesforceError(response.status_code, "ERROR", response.text[:500])
    first = body[0] if isinstance(body, list) and body else body
    if not isinstance(first, dict):
        return SalesforceError(response.status_code, "ERROR", str(body)[:500])
    return SalesforceError(
        response.status_code, str(first.get("errorCode", "ERROR")), str(first.get("message", ""))
    )
