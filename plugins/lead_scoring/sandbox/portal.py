"""The sandbox's portal: contacts, property definitions and email events in SQLite.

A file-backed portal survives restarts, so a second ``make demo`` talks to the same CRM the first
one wrote to. All access goes through one connection under a lock: the HTTP server is threaded,
and SQLite serialises writers anyway.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lead_scoring.crm.schema import LIFECYCLE_STAGES

# HubSpot-defined contact properties the sandbox knows from the start: (name, type, fieldType).
_STANDARD: list[tuple[str, str, str]] = [
    ("email", "string", "text"),
    ("firstname", "string", "text"),
    ("lastname", "string", "text"),
    ("company", "string", "text"),
    ("jobtitle", "string", "text"),
    ("industry", "string", "text"),
    ("numemployees", "enumeration", "select"),
    ("country", "string", "text"),
    ("city", "string", "text"),
    ("phone", "string", "text"),
    ("website", "string", "text"),
    ("hs_analytics_source", "enumeration", "select"),
    ("lifecyclestage", "enumeration", "radio"),
    ("createdate", "datetime", "date"),
    ("lastmodifieddate", "datetime", "date"),
    ("hs_object_id", "number", "number"),
] + [(f"hs_lifecyclestage_{stage}_date", "datetime", "date") for stage in LIFECYCLE_STAGES]

READ_ONLY = frozenset({"hs_object_id", "createdate", "lastmodifieddate"})
DEFAULT_LIST_PROPERTIES = (
    "createdate",
    "email",
    "firstname",
    "hs_object_id",
    "lastmodifieddate",
    "lastname",
)


class PortalError(Exception):
    """A request the portal refuses as a whole; the server turns it into an error body."""

    def __init__(self, status: int, category: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message


def now_iso() -> str:
    return iso(datetime.now(UTC))


def iso(moment: datetime) -> str:
    """HubSpot's timestamp form: ISO-8601 UTC with milliseconds and a Z."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def _stringify(value: Any) -> str:
    """Property values are always strings on the wire."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class Portal:
    """One HubSpot portal's worth of state."""

    def __init__(self, path: str | Path = ":memory:") -> None:
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        if self.path != ":memory:":
            self._db.execute("pragma journal_mode=wal")
        self._db.executescript(
            """
            create table if not exists contacts (
                id integer primary key autoincrement,
                email text unique,
                properties text not null,
                created_at text not null,
                updated_at text not null,
                archived integer not null default 0
            );
            create table if not exists properties (
                name text primary key,
                definition text not null
            );
            create table if not exists email_events (
                id text primary key,
                created integer not null,
                body text not null
            );
            create index if not exists email_events_created on email_events (created, id);
            create index if not exists contacts_updated on contacts (updated_at, id);
            create index if not exists contacts_created on contacts (created_at, id);
            create table if not exists property_history (
                contact_id integer not null,
                name text not null,
                value text not null,
                timestamp text not null,
                source_type text not null
            );
            create index if not exists property_history_contact
                on property_history (contact_id, name, timestamp);
            create table if not exists request_log (
                id integer primary key autoincrement,
                at text not null,
                method text not null,
                route text not null,
                status integer not null,
                records integer not null default 0
            );
            """
        )
        with self._lock:
            for name, type_, field_type in _STANDARD:
                self._db.execute(
                    "insert or ignore into properties (name, definition) values (?, ?)",
                    (name, json.dumps(self._definition(name, type_, field_type, hubspot=True))),
                )

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def _definition(
        name: str,
        type_: str,
        field_type: str,
        *,
        hubspot: bool,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        stamp = now_iso()
        doc: dict[str, Any] = {
            "name": name,
            "label": name.replace("_", " ").title(),
            "type": type_,
            "fieldType": field_type,
            "groupName": "contactinformation",
            "description": "",
            "displayOrder": -1,
            "hasUniqueValue": False,
            "hidden": False,
            "formField": False,
            "options": [],
            "calculated": False,
            "externalOptions": False,
            "hubspotDefined": hubspot,
            "archived": False,
            "createdAt": stamp,
            "updatedAt": stamp,
            "modificationMetadata": {
                "archivable": not hubspot,
                "readOnlyDefinition": hubspot,
                "readOnlyValue": name in READ_ONLY,
            },
        }
        if name == "lifecyclestage":
            doc["options"] = [
                {"label": s, "value": s, "hidden": False, "displayOrder": i}
                for i, s in enumerate(LIFECYCLE_STAGES)
            ]
        doc.update(extra or {})
        return doc

    # ------------------------------------------------------------------ records
    def _record(
        self,
        row: sqlite3.Row,
        properties: Sequence[str] | None,
        with_history: Sequence[str] = (),
    ) -> dict[str, Any]:
        stored: dict[str, str] = json.loads(row["properties"])
        stored["hs_object_id"] = str(row["id"])
        stored["createdate"] = row["created_at"]
        stored["lastmodifieddate"] = row["updated_at"]
        names = properties if properties else DEFAULT_LIST_PROPERTIES
        record: dict[str, Any] = {
            "id": str(row["id"]),
            "properties": {name: stored.get(name) for name in names},
            "createdAt": row["created_at"],
            "updatedAt": row["updated_at"],
            "archived": bool(row["archived"]),
        }
        if with_history:
            record["propertiesWithHistory"] = {name: [] for name in with_history}
            for entry in self._db.execute(
                "select name, value, timestamp, source_type from property_history "
                "where contact_id = ? and name in (select value from json_each(?)) "
                "order by timestamp desc, rowid desc",
                (row["id"], json.dumps(list(with_history))),
            ):
                record["propertiesWithHistory"][entry["name"]].append(
                    {
                        "value": entry["value"],
                        "timestamp": entry["timestamp"],
                        "sourceType": entry["source_type"],
                    }
                )
        return record

    def _log_history(
        self,
        contact_id: int,
        before: dict[str, str],
        after: dict[str, str],
        stamp: str,
        source_type: str,
    ) -> None:
        """One history entry per property whose value changed ("" when it was cleared)."""
        changed = [
            (contact_id, name, after.get(name, ""), stamp, source_type)
            for name in sorted(set(before) | set(after))
            if before.get(name) != after.get(name)
        ]
        self._db.executemany(
            "insert into property_history (contact_id, name, value, timestamp, source_type) "
            "values (?, ?, ?, ?, ?)",
            changed,
        )

    def list_contacts(
        self,
        *,
        after_id: int,
        limit: int,
        properties: Sequence[str] | None,
        archived: bool,
        with_history: Sequence[str] = (),
    ) -> tuple[list[dict[str, Any]], int | None]:
        """A page of contacts with id > ``after_id``, and the id to continue after (or None)."""
        with self._lock:
            rows = self._db.execute(
                "select * from contacts where id > ? and archived = ? order by id limit ?",
                (after_id, int(archived), limit + 1),
            ).fetchall()
            more = len(rows) > limit
            rows = rows[:limit]
            next_after = rows[-1]["id"] if more and rows else None
            return [self._record(r, properties, with_history) for r in rows], next_after

    def update_contacts(
        self, inputs: Sequence[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Apply a batch update. Returns the updated records and the ids that were not found.

        The whole batch is refused (400) if a property is unknown, read-only or badly typed,
        as HubSpot does; missing records only fail themselves (207).
        """
        with self._lock:
            definitions = self._definitions()
            keys: list[tuple[str, str]] = []
            for item in inputs:
                if not isinstance(item, dict) or "id" not in item:
                    raise PortalError(400, "VALIDATION_ERROR", "every input needs an id")
                id_property = item.get("idProperty") or "hs_object_id"
                if id_property not in ("hs_object_id", "email"):
                    raise PortalError(
                        400, "VALIDATION_ERROR", f"idProperty {id_property} is not unique"
                    )
                keys.append((id_property, str(item["id"])))
                props = item.get("properties")
                if not isinstance(props, dict):
                    raise PortalError(400, "VALIDATION_ERROR", "every input needs properties")
                for name, value in props.items():
                    self._check_value(definitions, name, value)
            if len(set(keys)) != len(keys):
                raise PortalError(400, "VALIDATION_ERROR", "Duplicate IDs found in batch input")

            stamp = now_iso()
            updated: list[dict[str, Any]] = []
            missing: list[str] = []
            self._db.execute("begin")
            try:
                for (id_property, key), item in zip(keys, inputs, strict=True):
                    row = self._find(id_property, key)
                    if row is None:
                        missing.append(key)
                        continue
                    before = json.loads(row["properties"])
                    props = dict(before)
                    props.update({k: _stringify(v) for k, v in item["properties"].items()})
                    props = {k: v for k, v in props.items() if v != ""}  # "" clears a value
                    self._log_history(row["id"], before, props, stamp, "INTEGRATION")
                    email = (props.get("email") or "").lower() or None
                    try:
                        self._db.execute(
                            "update contacts set email = ?, properties = ?, updated_at = ? "
                            "where id = ?",
                            (email, json.dumps(props, sort_keys=True), stamp, row["id"]),
                        )
                    except sqlite3.IntegrityError:
                        raise PortalError(
                            409, "CONFLICT", f"Contact already exists. Existing email: {email}"
                        ) from None
                    fresh = self._db.execute(
                        "select * from contacts where id = ?", (row["id"],)
                    ).fetchone()
                    updated.append(self._record(fresh, list(item["properties"])))
                self._db.execute("commit")
            except BaseException:
                self._db.execute("rollback")
                raise
        return updated, missing

    def _find(self, id_property: str, key: str) -> sqlite3.Row | None:
        if id_property == "email":
            row = self._db.execute(
                "select * from contacts where email = ?", (key.lower(),)
            ).fetchone()
        elif key.isdigit():
            row = self._db.execute("select * from contacts where id = ?", (int(key),)).fetchone()
        else:
            row = None
        return row if row is not None and not row["archived"] else None

    def _definitions(self) -> dict[str, dict[str, Any]]:
        rows = self._db.execute("select name, definition from properties").fetchall()
        return {r["name"]: json.loads(r["definition"]) for r in rows}

    @staticmethod
    def _check_value(definitions: dict[str, dict[str, Any]], name: str, value: Any) -> None:
        definition = definitions.get(name)
        if definition is None:
            raise PortalError(400, "VALIDATION_ERROR", f'Property "{name}" does not exist')
        if name in READ_ONLY:
            raise PortalError(400, "VALIDATION_ERROR", f'Property "{name}" is read-only')
        if value is None or value == "":
            return
        if definition["type"] == "number":
            try:
                float(str(value))
            except ValueError:
                raise PortalError(
                    400,
                    "VALIDATION_ERROR",
                    f'"{value}" is not a valid number for property "{name}"',
                ) from None
        options = [o["value"] for o in definition.get("options", [])]
        if definition["type"] == "enumeration" and options and _stringify(value) not in options:
            raise PortalError(
                400, "VALIDATION_ERROR", f'"{value}" is not a valid option for property "{name}"'
            )

    # ------------------------------------------------------------------ search
    def search_contacts(
        self,
        *,
        filter_groups: Sequence[Sequence[dict[str, Any]]],
        sort: tuple[str, bool] | None,
        query: str | None,
        properties: Sequence[str] | None,
        offset: int,
        limit: int,
    ) -> tuple[list[dict[str, Any]], int]:
        """A page of matching contacts and the total count (filters AND within a group, OR
        across groups; ``sort`` is (property, descending), ties broken by id)."""
        with self._lock:
            definitions = self._definitions()
            where: list[str] = ["archived = 0"]
            params: list[Any] = []
            groups: list[str] = []
            for group in filter_groups:
                parts: list[str] = []
                for condition in group:
                    clause, values = _filter_sql(definitions, condition)
                    parts.append(clause)
                    params.extend(values)
                if parts:
                    groups.append("(" + " and ".join(parts) + ")")
            if groups:
                where.append("(" + " or ".join(groups) + ")")
            if query:
                like = f"%{query.lower()}%"
                where.append(
                    "(email like ? or lower(json_extract(properties, '$.firstname')) like ? "
                    "or lower(json_extract(properties, '$.lastname')) like ? "
                    "or lower(json_extract(properties, '$.company')) like ?)"
                )
                params.extend([like] * 4)
            order = "id"
            if sort is not None:
                name, descending = sort
                if name not in definitions:
                    raise PortalError(400, "VALIDATION_ERROR", f'Unknown sort property "{name}"')
                column, _ = _column(definitions, name)
                order = f"{column} {'desc' if descending else 'asc'}, id"
            condition_sql = " and ".join(where)
            total = self._db.execute(
                f"select count(*) from contacts where {condition_sql}",
                params,
            ).fetchone()[0]
            rows = self._db.execute(
                f"select * from contacts where {condition_sql} order by {order} limit ? offset ?",
                [*params, limit, offset],
            ).fetchall()
        return [self._record(r, properties) for r in rows], int(total)

    # ------------------------------------------------------------------ batch read / upsert
    def read_contacts(
        self,
        keys: Sequence[str],
        *,
        id_property: str,
        properties: Sequence[str] | None,
        with_history: Sequence[str] = (),
    ) -> tuple[list[dict[str, Any]], list[str]]:
        """Records for ``keys`` (by id or a unique property), and the keys not found."""
        if id_property not in ("hs_object_id", "email"):
            raise PortalError(400, "VALIDATION_ERROR", f"idProperty {id_property} is not unique")
        found: list[dict[str, Any]] = []
        missing: list[str] = []
        with self._lock:
            for key in keys:
                row = self._find(id_property, str(key))
                if row is None:
                    missing.append(str(key))
                else:
                    found.append(self._record(row, properties, with_history))
        return found, missing

    def upsert_contacts(self, inputs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create or update contacts by a unique property (``email``); results carry ``new``."""
        with self._lock:
            definitions = self._definitions()
            for item in inputs:
                if not isinstance(item, dict) or not item.get("id"):
                    raise PortalError(400, "VALIDATION_ERROR", "every input needs an id")
                if item.get("idProperty") != "email":
                    raise PortalError(
                        400, "VALIDATION_ERROR", "batch upsert needs idProperty 'email' per input"
                    )
                props = item.get("properties")
                if not isinstance(props, dict):
                    raise PortalError(400, "VALIDATION_ERROR", "every input needs properties")
                for name, value in props.items():
                    self._check_value(definitions, name, value)
            emails = [str(i["id"]).lower() for i in inputs]
            if len(set(emails)) != len(emails):
                raise PortalError(400, "VALIDATION_ERROR", "Duplicate IDs found in batch input")
            stamp = now_iso()
            results: list[dict[str, Any]] = []
            self._db.execute("begin")
            try:
                for email, item in zip(emails, inputs, strict=True):
                    row = self._find("email", email)
                    changes = {k: _stringify(v) for k, v in item["properties"].items()}
                    if row is None:
                        props = {k: v for k, v in {**changes, "email": email}.items() if v != ""}
                        cursor = self._db.execute(
                            "insert into contacts (email, properties, created_at, updated_at) "
                            "values (?, ?, ?, ?)",
                            (email, json.dumps(props, sort_keys=True), stamp, stamp),
                        )
                        row_id, new = cursor.lastrowid, True
                        self._log_history(int(row_id or 0), {}, props, stamp, "INTEGRATION")
                    else:
                        before = json.loads(row["properties"])
                        props = {**before, **changes}
                        props = {k: v for k, v in props.items() if v != ""}
                        props["email"] = email
                        self._log_history(row["id"], before, props, stamp, "INTEGRATION")
                        self._db.execute(
                            "update contacts set properties = ?, updated_at = ? where id = ?",
                            (json.dumps(props, sort_keys=True), stamp, row["id"]),
                        )
                        row_id, new = row["id"], False
                    fresh = self._db.execute(
                        "select * from contacts where id = ?", (row_id,)
                    ).fetchone()
                    record = self._record(fresh, list(item["properties"]))
                    record["new"] = new
                    results.append(record)
                self._db.execute("commit")
            except BaseException:
                self._db.execute("rollback")
                raise
        return results

    def create_contacts(self, inputs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Create contacts; an email that exists fails the whole request with 409."""
        with self._lock:
            definitions = self._definitions()
            for item in inputs:
                props = item.get("properties") if isinstance(item, dict) else None
                if not isinstance(props, dict):
                    raise PortalError(400, "VALIDATION_ERROR", "every input needs properties")
                for name, value in props.items():
                    self._check_value(definitions, name, value)
            stamp = now_iso()
            results: list[dict[str, Any]] = []
            self._db.execute("begin")
            try:
                for item in inputs:
                    props = {k: _stringify(v) for k, v in item["properties"].items() if v != ""}
                    email = (props.get("email") or "").lower() or None
                    if email:
                        props["email"] = email
                        existing = self._db.execute(
                            "select id from contacts where email = ?", (email,)
                        ).fetchone()
                        if existing is not None:
                            raise PortalError(
                                409,
                                "CONFLICT",
                                f"Contact already exists. Existing ID: {existing['id']}",
                            )
                    cursor = self._db.execute(
                        "insert into contacts (email, properties, created_at, updated_at) "
                        "values (?, ?, ?, ?)",
                        (email, json.dumps(props, sort_keys=True), stamp, stamp),
                    )
                    self._log_history(int(cursor.lastrowid or 0), {}, props, stamp, "INTEGRATION")
                    fresh = self._db.execute(
                        "select * from contacts where id = ?", (cursor.lastrowid,)
                    ).fetchone()
                    results.append(self._record(fresh, list(item["properties"])))
                self._db.execute("commit")
            except BaseException:
                self._db.execute("rollback")
                raise
        return results

    def get_contacts(
        self, ids: Iterable[str], properties: Sequence[str] | None
    ) -> dict[str, dict[str, Any]]:
        """Records by id (for tests and the sandbox's own checks)."""
        out: dict[str, dict[str, Any]] = {}
        with self._lock:
            for key in ids:
                row = self._find("hs_object_id", str(key))
                if row is not None:
                    out[str(key)] = self._record(row, properties)
        return out

    def seed_contacts(self, contacts: Sequence[dict[str, Any]]) -> dict[str, int]:
        """Load contacts as the portal's history (sandbox admin, not a HubSpot endpoint).

        Keyed on email, so seeding the same dataset twice changes nothing; explicit
        ``createdAt``/``updatedAt`` let synthetic data carry realistic timestamps.
        """
        counts = {"created": 0, "updated": 0, "unchanged": 0}
        with self._lock:
            self._db.execute("begin")
            try:
                for contact in contacts:
                    props = {
                        k: _stringify(v)
                        for k, v in contact["properties"].items()
                        if v not in (None, "")
                    }
                    email = props.get("email", "").lower() or None
                    created = str(contact.get("createdAt") or now_iso())
                    updated = str(contact.get("updatedAt") or created)
                    row = (
                        self._db.execute(
                            "select * from contacts where email = ?", (email,)
                        ).fetchone()
                        if email
                        else None
                    )
                    if row is None:
                        cursor = self._db.execute(
                            "insert into contacts (email, properties, created_at, updated_at) "
                            "values (?, ?, ?, ?)",
                            (email, json.dumps(props, sort_keys=True), created, updated),
                        )
                        self._seed_history(int(cursor.lastrowid or 0), props, created)
                        counts["created"] += 1
                        continue
                    current = json.loads(row["properties"])
                    merged = {**current, **props}
                    if merged == current:
                        counts["unchanged"] += 1
                        continue
                    self._log_history(
                        row["id"], current, merged, max(updated, row["updated_at"]), "IMPORT"
                    )
                    self._db.execute(
                        "update contacts set properties = ?, updated_at = ? where id = ?",
                        (
                            json.dumps(merged, sort_keys=True),
                            max(updated, row["updated_at"]),
                            row["id"],
                        ),
                    )
                    counts["updated"] += 1
                self._db.execute("commit")
            except BaseException:
                self._db.execute("rollback")
                raise
        return counts

    def corrupt_contact(self, email: str, properties: dict[str, Any]) -> None:
        """Fault injection (sandbox admin): set property values exactly as given (a list, an
        object, a NUL, a lone surrogate), bypassing the string form HubSpot keeps, to see what
        the extractor does with a record no well-behaved portal would send."""
        with self._lock:
            row = self._db.execute("select * from contacts where email = ?", (email,)).fetchone()
            if row is None:
                raise KeyError(email)
            merged = {**json.loads(row["properties"]), **properties}
            self._db.execute(
                "update contacts set properties = ? where id = ?",
                (json.dumps(merged, sort_keys=True), row["id"]),
            )

    def _seed_history(self, contact_id: int, props: dict[str, str], created: str) -> None:
        """A seeded contact's history as HubSpot would hold it: its values as set at creation,
        and the lifecycle stage moving through each stage on that stage's entry date."""
        stages = sorted(
            (props[f"hs_lifecyclestage_{stage}_date"], stage)
            for stage in LIFECYCLE_STAGES
            if props.get(f"hs_lifecyclestage_{stage}_date")
        )
        initial = dict(props)
        if stages and "lifecyclestage" in props:
            initial["lifecyclestage"] = stages[0][1]
        self._log_history(contact_id, {}, initial, created, "IMPORT")
        previous = initial.get("lifecyclestage")
        for moment, stage in stages[1:]:
            if stage != previous:
                self._log_history(
                    contact_id,
                    {"lifecyclestage": previous or ""},
                    {"lifecyclestage": stage},
                    max(moment, created),
                    "CRM_UI",
                )
                previous = stage

    # ------------------------------------------------------------------ properties
    def get_property(self, name: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute(
                "select definition from properties where name = ?", (name,)
            ).fetchone()
        return None if row is None else dict(json.loads(row["definition"]))

    def list_properties(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._definitions().values())

    def create_property(self, body: dict[str, Any]) -> dict[str, Any]:
        required = ("name", "label", "type", "fieldType", "groupName")
        missing = [k for k in required if not body.get(k)]
        if missing:
            raise PortalError(
                400, "VALIDATION_ERROR", f"missing required fields: {', '.join(missing)}"
            )
        types = {"string", "number", "date", "datetime", "enumeration", "bool"}
        field_types = {
            "textarea", "text", "date", "file", "number", "select", "radio", "checkbox",
            "booleancheckbox", "calculation_equation",
        }  # fmt: skip
        if body["type"] not in types:
            raise PortalError(400, "VALIDATION_ERROR", f"type must be one of {sorted(types)}")
        if body["fieldType"] not in field_types:
            raise PortalError(
                400, "VALIDATION_ERROR", f"fieldType must be one of {sorted(field_types)}"
            )
        name = str(body["name"])
        extra = {k: v for k, v in body.items() if k not in ("type", "fieldType", "name")}
        definition = self._definition(
            name, body["type"], body["fieldType"], hubspot=False, extra=extra
        )
        with self._lock:
            try:
                self._db.execute(
                    "insert into properties (name, definition) values (?, ?)",
                    (name, json.dumps(definition)),
                )
            except sqlite3.IntegrityError:
                raise PortalError(
                    409, "CONFLICT", f"A property named '{name}' already exists."
                ) from None
        return definition

    # ------------------------------------------------------------------ email events
    def add_email_events(self, events: Sequence[dict[str, Any]]) -> int:
        """Store events (sandbox admin); keyed on event id, so re-adding is a no-op."""
        with self._lock:
            before = self._db.total_changes
            self._db.execute("begin")
            self._db.executemany(
                "insert or ignore into email_events (id, created, body) values (?, ?, ?)",
                [(str(e["id"]), int(e["created"]), json.dumps(e)) for e in events],
            )
            self._db.execute("commit")
            return self._db.total_changes - before

    def email_events(
        self, *, start_ms: int, end_ms: int, after: tuple[int, str] | None, limit: int
    ) -> tuple[list[dict[str, Any]], tuple[int, str] | None]:
        """Events created in ``[start_ms, end_ms]`` in (created, id) order, after a position."""
        after_created, after_id = after if after else (start_ms - 1, "")
        with self._lock:
            rows = self._db.execute(
                """
                select id, created, body from email_events
                where created between ? and ? and (created > ? or (created = ? and id > ?))
                order by created, id limit ?
                """,
                (start_ms, end_ms, after_created, after_created, after_id, limit + 1),
            ).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        position = (rows[-1]["created"], rows[-1]["id"]) if more and rows else None
        return [json.loads(r["body"]) for r in rows], position

    # ------------------------------------------------------------------ bookkeeping
    def log_request(self, method: str, route: str, status: int, records: int) -> None:
        with self._lock:
            self._db.execute(
                "insert into request_log (at, method, route, status, records) "
                "values (?, ?, ?, ?, ?)",
                (now_iso(), method, route, status, records),
            )

    def stats(self) -> dict[str, Any]:
        """Counts a test or the demo can compare before and after a run."""
        with self._lock:
            contacts = self._db.execute("select count(*) from contacts").fetchone()[0]
            events = self._db.execute("select count(*) from email_events").fetchone()[0]
            rows = self._db.execute(
                """
                select method, route, status, count(*) as calls, sum(records) as records
                from request_log group by method, route, status order by method, route, status
                """
            ).fetchall()
        return {
            "contacts": contacts,
            "email_events": events,
            "requests": [dict(r) for r in rows],
        }


# ---------------------------------------------------------------------- search filters
SEARCH_OPERATORS = frozenset(
    {
        "EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN",
        "HAS_PROPERTY", "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN",
    }
)  # fmt: skip
_COLUMNS = {
    "hs_object_id": "id",
    "lastmodifieddate": "updated_at",
    "createdate": "created_at",
    "email": "email",
}


def _column(definitions: dict[str, dict[str, Any]], name: str) -> tuple[str, str]:
    """The SQL expression holding property ``name`` and its HubSpot type."""
    type_ = str(definitions[name]["type"])
    if name == "hs_object_id":
        return "id", type_  # the integer primary key itself, so id ranges use the index
    column = _COLUMNS.get(name)
    if column is None:
        if not re.fullmatch(r"[A-Za-z0-9_]+", name):
            raise PortalError(400, "VALIDATION_ERROR", f'Invalid property name "{name}"')
        column = f"json_extract(properties, '$.{name}')"
    if type_ == "number":
        column = f"cast({column} as real)"
    elif type_ not in ("date", "datetime"):
        column = f"lower({column})"
    return column, type_


def _filter_value(type_: str, value: Any) -> Any:
    """A filter value in the stored form: dates as ISO text (from epoch ms or ISO), numbers as
    numbers, text lower-cased (HubSpot's text comparisons ignore case)."""
    text = "" if value is None else str(value)
    if type_ in ("date", "datetime"):
        if text.lstrip("-").isdigit():
            return iso(datetime.fromtimestamp(int(text) / 1000, tz=UTC))
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise PortalError(
                400, "VALIDATION_ERROR", f"{value!r} is not a valid date (epoch millis or ISO)"
            ) from None
        return iso(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    if type_ == "number":
        try:
            return float(text)
        except ValueError:
            raise PortalError(400, "VALIDATION_ERROR", f"{value!r} is not a number") from None
    return text.lower()


def _filter_sql(
    definitions: dict[str, dict[str, Any]], condition: dict[str, Any]
) -> tuple[str, list[Any]]:
    name, operator = condition.get("propertyName"), condition.get("operator")
    if not isinstance(name, str) or operator not in SEARCH_OPERATORS:
        raise PortalError(
            400,
            "VALIDATION_ERROR",
            f"a filter needs propertyName and an operator in {sorted(SEARCH_OPERATORS)}",
        )
    if name not in definitions:
        raise PortalError(400, "VALIDATION_ERROR", f'Property "{name}" does not exist')
    column, type_ = _column(definitions, name)
    if operator == "HAS_PROPERTY":
        return f"({column} is not null and {column} != '')", []
    if operator == "NOT_HAS_PROPERTY":
        return f"({column} is null or {column} = '')", []
    if operator in ("IN", "NOT_IN"):
        values = condition.get("values")
        if not isinstance(values, list) or not values:
            raise PortalError(400, "VALIDATION_ERROR", f"{operator} needs a values list")
        marks = ", ".join("?" for _ in values)
        converted = [_filter_value(type_, v) for v in values]
        if operator == "IN":
            return f"{column} in ({marks})", converted
        return f"({column} is null or {column} not in ({marks}))", converted
    if operator in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        # A token is a whole word of the value; a * in it is a wildcard ("market*").
        token = str(condition.get("value", "")).lower().replace("*", "%")
        patterns = [token, f"{token} %", f"% {token}", f"% {token} %"]
        if token.endswith("%"):
            patterns = [token, f"% {token}"]
        matches = "(" + " or ".join(f"{column} like ?" for _ in patterns) + ")"
        if operator == "CONTAINS_TOKEN":
            return matches, patterns
        return f"({column} is null or not {matches})", patterns
    if "value" not in condition:
        raise PortalError(400, "VALIDATION_ERROR", f"{operator} needs a value")
    value = _filter_value(type_, condition["value"])
    if operator == "BETWEEN":
        if "highValue" not in condition:
            raise PortalError(400, "VALIDATION_ERROR", "BETWEEN needs value and highValue")
        return f"{column} between ? and ?", [value, _filter_value(type_, condition["highValue"])]
    if operator == "NEQ":
        return f"({column} is null or {column} != ?)", [value]
    sign = {"EQ": "=", "LT": "<", "LTE": "<=", "GT": ">", "GTE": ">="}[operator]
    return f"{column} {sign} ?", [value]
