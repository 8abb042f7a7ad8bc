"""The raw tables and how a batch merges into each.

- ``raw_crm.contacts`` keeps one row per *distinct version* of a contact: a version is inserted
  only when its properties (ignoring the volatile last-modified stamp) differ from the latest one
  stored. Re-extracting an unchanged portal adds nothing; a changed contact adds a version, which
  is what point-in-time scoring reads.
- ``raw_crm.contact_property_history`` keeps each (contact, property, time, value) once: the
  history is re-read for every contact that changes, and only new entries are added.
- ``raw_crm.email_events`` and ``raw_analytics.web_events`` are keyed on the source's own event id
  (``id`` / Segment ``messageId``): a replayed event is a duplicate, never a second row.
  ``on conflict do nothing`` also skips repeats inside one batch (the first one read, in file
  order, is kept), without sorting the batch: a sort of whole rows would cost more than the COPY.
"""

from __future__ import annotations

from lead_scoring.load.batch import RawTable
from lead_scoring.warehouse import RAW_ANALYTICS, RAW_CRM

# What the loader appends to every row (see load_batch).
LINEAGE = ("batch_id", "loaded_at", "interval_start", "interval_end")

CONTACTS = RawTable(
    RAW_CRM,
    "contacts",
    (
        "contact_id",
        "updated_at",
        "properties",
        "properties_hash",
        "archived",
        "raw",
        *LINEAGE,
    ),
    """
    insert into {target} (
        contact_id, updated_at, properties, properties_hash, archived, raw,
        batch_id, loaded_at, interval_start, interval_end
    )
    select s.contact_id, s.updated_at, s.properties, s.properties_hash, s.archived, s.raw,
           s.batch_id, s.loaded_at, s.interval_start, s.interval_end
    from (
        select distinct on (contact_id) *
        from {staging}
        order by contact_id, updated_at desc
    ) as s
    left join lateral (
        select c.properties_hash
        from {target} as c
        where c.contact_id = s.contact_id
        order by c.updated_at desc
        limit 1
    ) as latest on true
    where latest.properties_hash is distinct from s.properties_hash
    on conflict (contact_id, updated_at) do nothing
    """,
)

CONTACT_PROPERTY_HISTORY = RawTable(
    RAW_CRM,
    "contact_property_history",
    ("contact_id", "property", "value", "changed_at", "source_type", "raw", *LINEAGE),
    """
    insert into {target} (
        contact_id, property, value, changed_at, source_type, raw,
        batch_id, loaded_at, interval_start, interval_end
    )
    select
        contact_id, property, value, changed_at, source_type, raw,
        batch_id, loaded_at, interval_start, interval_end
    from {staging}
    on conflict (contact_id, property, changed_at, value) do nothing
    """,
)

EMAIL_EVENTS = RawTable(
    RAW_CRM,
    "email_events",
    ("event_id", "event_type", "recipient", "created_at", "raw", *LINEAGE),
    """
    insert into {target} (
        event_id, event_type, recipient, created_at, raw,
        batch_id, loaded_at, interval_start, interval_end
    )
    select
        event_id, event_type, recipient, created_at, raw,
        batch_id, loaded_at, interval_start, interval_end
    from {staging}
    on conflict (event_id) do nothing
    """,
)

WEB_EVENTS = RawTable(
    RAW_ANALYTICS,
    "web_events",
    (
        "message_id",
        "event_type",
        "event_name",
        "anonymous_id",
        "user_id",
        "event_timestamp",
        "raw",
        "source_file",
        "source_line",
        "source_format",
        *LINEAGE,
    ),
    """
    with identifies as (
        insert into raw_analytics.identifies (
            message_id, anonymous_id, user_id, email, traits, event_timestamp,
            batch_id, loaded_at, interval_start, interval_end
        )
        select
            message_id, anonymous_id, user_id,
            lower(nullif(trim(raw -> 'traits' ->> 'email'), '')),
            raw -> 'traits', event_timestamp,
            batch_id, loaded_at, interval_start, interval_end
        from {staging}
        where event_type = 'identify'
        on conflict (message_id) do nothing
    )
    insert into {target} (
        message_id, event_type, event_name, anonymous_id, user_id, event_timestamp,
        raw, source_file, source_line, source_format,
        batch_id, loaded_at, interval_start, interval_end
    )
    select
        message_id, event_type, event_name, anonymous_id, user_id, event_timestamp,
        raw, source_file, source_line, source_format,
        batch_id, loaded_at, interval_start, interval_end
    from {staging}
    on conflict (message_id) do nothing
    """,
    companions=(f"{RAW_ANALYTICS}.identifies",),
)
