"""A small local stand-in of Salesforce's Bulk API 2.0 ingest (upsert of ``Lead`` by an external
id) and of the REST query endpoint, following ``../shared/contracts/crm-wire-contract.md`` §11.

Enough of the org for the sync's second target to be tested over real HTTP: bearer auth, the
job life cycle (``Open`` -> ``UploadComplete`` -> ``InProgress`` -> ``JobComplete``, or
``Aborted``/``Failed``), CSV upload with the job's delimiter and line ending, per-record results
(``successfulResults``, ``failedResults``, ``unprocessedrecords``), Salesforce's error shapes
(REST errors as an array of ``{errorCode, message}``; ``sf__Error`` per record), and the rules
the sync meets in a real org: a CSV naming a field the org does not have fails the job; a value
of the wrong type fails its record; an upsert that would create a Lead without ``LastName`` and
``Company`` fails (``REQUIRED_FIELD_MISSING``); a converted Lead cannot be updated
(``CANNOT_UPDATE_CONVERTED_LEAD``); ``#N/A`` sets a field to null and an empty cell leaves it.
A job is processed on the first poll after it is closed, so clients must poll.

In memory, one org per server; ``fields`` declares the custom fields the org has (name ->
type: ``number``, ``checkbox``, ``date``, ``datetime``, ``text``).
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

STANDARD_FIELDS = {
    "Id": "id",
    "Email": "text",
    "FirstName": "text",
    "LastName": "text",
    "Company": "text",
    "IsConverted": "checkbox",
}
API = r"/services/data/v(?P<version>\d+\.\d)"
DELIMITERS = {"COMMA": ",", "TAB": "\t", "PIPE": "|", "SEMICOLON": ";", "CARET": "^"}


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class Org:
    """The org's Leads (by Salesforce id) and ingest jobs; thread-safe."""

    def __init__(self, fields: dict[str, str], external_id: str) -> None:
        self.fields = {**STANDARD_FIELDS, external_id: "text", **fields}
        self.external_id = external_id
        self.leads: dict[str, dict[str, Any]] = {}
        self._keyed: dict[str, str] = {}  # external id -> Salesforce id
        self.jobs: dict[str, dict[str, Any]] = {}
        self.requests: Counter[str] = Counter()
        self.lock = threading.Lock()

    def seed(self, leads: list[dict[str, Any]]) -> list[str]:
        ids = []
        with self.lock:
            for values in leads:
                lead_id = "00Q" + secrets.token_hex(6)
                self.leads[lead_id] = {"Id": lead_id, "IsConverted": False, **values}
                if values.get(self.external_id):
                    self._keyed[str(values[self.external_id])] = lead_id
                ids.append(lead_id)
        return ids

    def by_key(self, key: str) -> dict[str, Any] | None:
        with self.lock:
            lead = self.leads.get(self._keyed.get(key, ""))
            return dict(lead) if lead is not None else None

    # ------------------------------------------------------------------ ingest
    def create_job(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _Refusal(400, "JSON_PARSER_ERROR", "The request body is not a JSON object")
        if body.get("object") != "Lead":
            raise _Refusal(400, "INVALIDENTITY", f"Entity '{body.get('object')}' is not supported")
        if body.get("operation") != "upsert":
            raise _Refusal(400, "FEATURENOTENABLED", "Only upsert is supported by this stand-in")
        if body.get("externalIdFieldName") != self.external_id:
            raise _Refusal(
                400,
                "INVALIDFIELD",
                f"Field {body.get('externalIdFieldName')} is not an External ID field on Lead",
            )
        if body.get("contentType", "CSV") != "CSV":
            raise _Refusal(400, "INVALIDCONTENTTYPE", "Only CSV is supported")
        delimiter = body.get("columnDelimiter", "COMMA")
        line_ending = body.get("lineEnding", "LF")
        if delimiter not in DELIMITERS or line_ending not in ("LF", "CRLF"):
            raise _Refusal(400, "INVALID_INPUT", "Unknown columnDelimiter or lineEnding")
        job_id = "750" + secrets.token_hex(6)
        job = {
            "id": job_id,
            "operation": "upsert",
            "object": "Lead",
            "externalIdFieldName": self.external_id,
            "state": "Open",
            "contentType": "CSV",
            "columnDelimiter": delimiter,
            "lineEnding": line_ending,
            "apiVersion": 60.0,
            "numberRecordsProcessed": 0,
            "numberRecordsFailed": 0,
            "errorMessage": None,
            "createdDate": datetime.now(UTC).isoformat(),
            "_data": None,
            "_results": ([], [], []),  # successful, failed, unprocessed
        }
        with self.lock:
            self.jobs[job_id] = job
        return self.public(job)

    def job(self, job_id: str) -> dict[str, Any]:
        job = self.jobs.get(job_id)
        if job is None:
            raise _Refusal(404, "NOT_FOUND", "The requested resource does not exist")
        return job

    @staticmethod
    def public(job: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in job.items() if not k.startswith("_")}

    def upload(self, job_id: str, data: str) -> None:
        with self.lock:
            job = self.job(job_id)
            if job["state"] != "Open":
                raise _Refusal(409, "INVALIDJOBSTATE", f"Job is {job['state']}, not Open")
            if job["_data"] is not None:
                raise _Refusal(409, "INVALIDJOBSTATE", "Data were already uploaded for this job")
            job["_data"] = data

    def change_state(self, job_id: str, body: Any) -> dict[str, Any]:
        state = body.get("state") if isinstance(body, dict) else None
        with self.lock:
            job = self.job(job_id)
            if state == "UploadComplete" and job["state"] == "Open":
                job["state"] = "UploadComplete"
            elif state == "Aborted" and job["state"] in ("Open", "UploadComplete", "InProgress"):
                job["state"] = "Aborted"
            else:
                raise _Refusal(
                    400, "INVALIDJOBSTATE", f"Cannot move a {job['state']} job to {state}"
                )
            return self.public(job)

    def poll(self, job_id: str) -> dict[str, Any]:
        with self.lock:
            job = self.job(job_id)
            if job["state"] == "UploadComplete":
                job["state"] = "InProgress"  # seen once by the client, as in a real org
            elif job["state"] == "InProgress":
                self._process(job)
            return self.public(job)

    def _process(self, job: dict[str, Any]) -> None:
        text = job["_data"] or ""
        ending = "\r\n" if job["lineEnding"] == "CRLF" else "\n"
        if text and not text.endswith(ending):
            job.update(state="Failed", errorMessage="InvalidBatch : LineEnding is invalid")
            return
        rows = list(csv.reader(io.StringIO(text), delimiter=DELIMITERS[job["columnDelimiter"]]))
        if not rows:
            job.update(state="Failed", errorMessage="InvalidBatch : No content")
            return
        header, *records = rows
        unknown = [name for name in header if name not in self.fields or name == "Id"]
        if unknown or self.external_id not in header:
            missing = unknown[0] if unknown else self.external_id
            job.update(
                state="Failed", errorMessage=f"InvalidBatch : Field name not found : {missing}"
            )
            return
        successful, failed, _ = job["_results"]
        for row in records:
            values = dict(zip(header, row, strict=False))
            error = self._upsert(values)
            if error:
                failed.append({"sf__Id": "", "sf__Error": error, **values})
            else:
                lead = self.leads[self._keyed[values[self.external_id]]]
                created = lead.pop("_created", False)
                successful.append(
                    {"sf__Id": lead["Id"], "sf__Created": str(created).lower(), **values}
                )
        job.update(
            state="JobComplete",
            numberRecordsProcessed=len(records),
            numberRecordsFailed=len(failed),
        )

    def _upsert(self, values: dict[str, str]) -> str | None:
        key = values[self.external_id]
        converted: dict[str, Any] = {}
        for name, raw in values.items():
            if raw == "":
                continue  # an empty cell leaves the field as it is
            if raw == "#N/A":
                converted[name] = None
                continue
            try:
                converted[name] = _convert(self.fields[name], raw)
            except ValueError:
                return (
                    f"INVALID_TYPE_ON_FIELD_IN_RECORD:{name}: value not of required type: "
                    f"{raw}:{name} --"
                )
        lead = self.leads.get(self._keyed.get(key, ""))
        if lead is None:
            missing = [f for f in ("LastName", "Company") if not converted.get(f)]
            if missing:
                return (
                    f"REQUIRED_FIELD_MISSING:Required fields are missing: [{', '.join(missing)}]:"
                    f"{' '.join(missing)} --"
                )
            lead_id = "00Q" + secrets.token_hex(6)
            self.leads[lead_id] = {"Id": lead_id, "IsConverted": False, **converted}
            self.leads[lead_id]["_created"] = True
            self._keyed[key] = lead_id
            return None
        if lead.get("IsConverted"):
            return "CANNOT_UPDATE_CONVERTED_LEAD:cannot reference converted lead:--"
        lead.update(converted)
        return None

    def results(self, job_id: str, kind: str) -> str:
        with self.lock:
            job = self.job(job_id)
            if job["state"] not in ("JobComplete", "Failed", "Aborted"):
                raise _Refusal(400, "INVALIDJOBSTATE", f"Job is {job['state']}: no results yet")
            successful, failed, unprocessed = job["_results"]
            header_fields = next(csv.reader(io.StringIO(job["_data"] or "")), [])
            if kind == "successfulResults":
                return _csv(["sf__Id", "sf__Created", *header_fields], successful)
            if kind == "failedResults":
                return _csv(["sf__Id", "sf__Error", *header_fields], failed)
            if job["state"] != "JobComplete" and job["_data"]:
                rows = list(csv.DictReader(io.StringIO(job["_data"])))
                return _csv(header_fields, rows)
            return _csv(header_fields, unprocessed)

    # ------------------------------------------------------------------ query
    def query(self, soql: str) -> dict[str, Any]:
        match = re.fullmatch(
            r"\s*SELECT\s+(?P<fields>[\w\s,]+?)\s+FROM\s+Lead\s+WHERE\s+(?P<key>\w+)\s+IN\s*"
            r"\((?P<values>.*)\)\s*",
            soql,
            flags=re.IGNORECASE | re.DOTALL,
        )
        if not match:
            raise _Refusal(
                400,
                "MALFORMED_QUERY",
                "This stand-in answers SELECT .. FROM Lead WHERE key IN (..)",
            )
        fields = [f.strip() for f in match["fields"].split(",")]
        unknown = [f for f in [*fields, match["key"]] if f not in self.fields]
        if unknown:
            raise _Refusal(400, "INVALID_FIELD", f"No such column '{unknown[0]}' on entity 'Lead'")
        wanted = {
            v.replace("\\'", "'") for v in re.findall(r"'((?:[^'\\]|\\.)*)'", match["values"])
        }
        with self.lock:
            found = [
                {"attributes": {"type": "Lead"}, **{f: _json_value(lead.get(f)) for f in fields}}
                for lead in self.leads.values()
                if str(lead.get(match["key"])) in wanted
            ]
        return {"totalSize": len(found), "done": True, "records": found}


def _convert(kind: str, raw: str) -> Any:
    if kind == "number":
        return float(raw)
    if kind == "checkbox":
        if raw.lower() not in ("true", "false"):
            raise ValueError(raw)
        return raw.lower() == "true"
    if kind == "date":
        return date.fromisoformat(raw)
    if kind == "datetime":
        return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    return raw


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _csv(header: list[str], rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(
        out, header, quoting=csv.QUOTE_ALL, lineterminator="\n", extrasaction="ignore"
    )
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], org: Org, token: str) -> None:
        super().__init__(address, _Handler)
        self.org = org
        self.token = token


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        org = self.server.org
        route = "unknown"
        try:
            if self.headers.get("Authorization", "") != f"Bearer {self.server.token}":
                raise _Refusal(401, "INVALID_SESSION_ID", "Session expired or invalid")
            route, status, body, content_type = self._route(method, parts.path, parts.query, raw)
        except _Refusal as refusal:
            status, content_type = refusal.status, "application/json"
            body = json.dumps([{"errorCode": refusal.code, "message": refusal.message}])
        with org.lock:
            org.requests[f"{route} {status}"] += 1
        payload = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _route(self, method: str, path: str, query: str, raw: bytes) -> tuple[str, int, str, str]:
        org = self.server.org
        as_json = "application/json"
        if re.fullmatch(API + r"/jobs/ingest/?", path) and method == "POST":
            return "jobs.create", 200, json.dumps(org.create_job(_json(raw))), as_json
        match = re.fullmatch(API + r"/jobs/ingest/(?P<job>\w+)(?P<rest>/.*)?", path)
        if match:
            job_id, rest = match["job"], (match["rest"] or "").rstrip("/")
            if rest == "/batches" and method == "PUT":
                if not (self.headers.get("Content-Type") or "").startswith("text/csv"):
                    raise _Refusal(400, "INVALIDCONTENTTYPE", "Content-Type must be text/csv")
                org.upload(job_id, raw.decode())
                return "jobs.upload", 201, "", "text/plain"
            if rest == "" and method == "PATCH":
                return "jobs.state", 200, json.dumps(org.change_state(job_id, _json(raw))), as_json
            if rest == "" and method == "GET":
                return "jobs.get", 200, json.dumps(org.poll(job_id)), as_json
            kinds = ("/successfulResults", "/failedResults", "/unprocessedrecords")
            if rest in kinds and method == "GET":
                return f"jobs.{rest[1:]}", 200, org.results(job_id, rest[1:]), "text/csv"
        if re.fullmatch(API + r"/sobjects/Lead/describe/?", path) and method == "GET":
            fields = [{"name": name, "type": kind} for name, kind in org.fields.items()]
            return "describe", 200, json.dumps({"name": "Lead", "fields": fields}), as_json
        if re.fullmatch(API + r"/query/?", path) and method == "GET":
            soql = (parse_qs(query).get("q") or [""])[0]
            return "query", 200, json.dumps(org.query(soql)), as_json
        raise _Refusal(404, "NOT_FOUND", "The requested resource does not exist")


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw or b"null")
    except json.JSONDecodeError:
        raise _Refusal(400, "JSON_PARSER_ERROR", "The request body is not valid JSON") from None


class SalesforceSandbox:
    """``with SalesforceSandbox(fields={...}) as org: client = SalesforceBulkClient(org.url,
    org.token)``; ``org.org`` holds the Leads."""

    def __init__(
        self,
        *,
        port: int = 0,
        token: str = "sf-sandbox-token",  # noqa: S107 - a local stand-in, not a credential
        fields: dict[str, str] | None = None,
        external_id: str = "DW_Lead_Key__c",
    ) -> None:
        self.token = token
        self.org = Org(fields or {}, external_id)
        self.httpd = _Server(("127.0.0.1", port), self.org, token)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def requests(self) -> Iterator[tuple[str, int]]:
        with self.org.lock:
            yield from self.org.requests.items()

    def __enter__(self) -> SalesforceSandbox:
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
