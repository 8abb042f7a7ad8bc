"""Synthetic portals and analytics exports that behave like real ones.

Each contact has a persona (firmographics), a hidden propensity to buy, and a history drawn from
it: web sessions through the funnel (awareness -> consideration -> decision pages), anonymous
visits later stitched by ``identify``, marketing emails with opens, clicks, bounces and
unsubscribes, and lifecycle conversions (MQL, SQL, opportunity, customer) that are more likely
the higher the propensity. That is what lets a good scoring model measurably beat a bad one.

Generation is deterministic for a ``(seed, index)`` pair and streams one contact at a time, so
the first N contacts are the same whatever the size and memory stays flat for large portals.

A share of contacts (``dirty_share``) also carries one dirty record of the kinds a real portal
and export hold (``DIRTY_KINDS``). They come from their own random stream, so the clean data is
the same whatever the share. ``EXPECTED_QUARANTINE`` says where each kind must end up.
"""

from __future__ import annotations

import json
import random
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

# Bumped whenever the same seed would produce different data.
GENERATOR_VERSION = 4

# Dirty records, and the quarantine reason each must get (None: it is valid and must load).
EXPECTED_QUARANTINE: dict[str, str | None] = {
    "bad_email": "invalid_email",  # contact: an email that is not an address
    "duplicate_contact": None,  # contact: the same person entered twice (CRM data, kept)
    "sql_name": None,  # contact: quotes and SQL in names, stored verbatim
    "long_title": None,  # contact: a 10,000-character job title, stored whole
    "unknown_email_type": "unknown_type",  # email event: a type the API does not define
    "malformed_json": "malformed_json",  # web: a truncated line
    "duplicate_event": None,  # web: the same event twice (a replay), loaded once
    "unknown_event_type": "unknown_type",  # web: not a Segment call type
    "future_event": "future_timestamp",  # web: a clock years ahead
    "huge_event": "oversized_event",  # web: a 100 KB property
}
DIRTY_KINDS = tuple(EXPECTED_QUARANTINE)
SQL_NAMES = (
    ("Robert'); DROP TABLE students;--", "Tables"),
    ('Ann "The Closer"', "O'Neil-Smith"),
    ("1; SELECT pg_sleep(10)", "--'; DELETE FROM raw_crm.contacts"),
    ("Zoë\\", "Nuñez \\N"),
)


@dataclass(frozen=True)
class Persona:
    name: str
    weight: float
    propensity: tuple[float, float]  # beta distribution (a, b)
    titles: tuple[str, ...]
    industries: tuple[str, ...]
    sizes: tuple[str, ...]
    special_pages: tuple[str, ...] = ()  # pages this persona visits that signal no purchase intent


PERSONAS: tuple[Persona, ...] = (
    Persona(
        "enterprise_buyer", 0.14, (4.0, 3.0),
        ("VP of Marketing", "Head of Revenue Operations", "Director of Sales",
         "Chief Marketing Officer", "VP Sales", "Director of Demand Generation"),
        ("Software", "Financial Services", "Healthcare", "Manufacturing"),
        ("500-1000", "1000+"),
    ),
    Persona(
        "mid_market_manager", 0.24, (3.0, 4.0),
        ("Marketing Manager", "Sales Operations Manager", "Demand Generation Manager",
         "Growth Manager", "Marketing Operations Lead"),
        ("Software", "Retail", "Financial Services", "Professional Services", "Manufacturing"),
        ("50-100", "100-500", "500-1000"),
    ),
    Persona(
        "smb_founder", 0.14, (2.5, 4.0),
        ("Founder", "CEO", "Owner", "Co-founder", "Managing Director"),
        ("Retail", "Professional Services", "Software", "Hospitality"),
        ("1-5", "5-25", "25-50"),
    ),
    Persona(
        "practitioner", 0.22, (1.5, 5.0),
        ("Marketing Specialist", "Data Analyst", "Software Engineer", "Content Writer",
         "Sales Development Representative"),
        ("Software", "Retail", "Healthcare", "Media", "Professional Services"),
        ("25-50", "50-100", "100-500", "500-1000"),
    ),
    Persona(
        "student", 0.11, (1.0, 9.0),
        ("Student", "Graduate Student", "Intern", "Research Assistant"),
        ("Education",),
        ("1-5",),
    ),
    Persona(
        "job_seeker", 0.10, (1.0, 8.0),
        ("Account Executive", "Marketing Coordinator", "Recruiter", "Customer Success Manager"),
        ("Software", "Retail", "Staffing"),
        ("5-25", "25-50", "50-100"),
        special_pages=("/careers", "/careers/open-positions", "/careers/engineering"),
    ),
    Persona(
        "investor", 0.05, (1.0, 9.0),
        ("Investment Analyst", "Partner", "Associate", "Portfolio Manager"),
        ("Venture Capital", "Investment Banking"),
        ("5-25", "25-50"),
        special_pages=("/investors", "/investors/annual-report", "/investors/press"),
    ),
)  # fmt: skip

COUNTRIES = (
    ("United States", 0.38), ("United Kingdom", 0.1), ("Germany", 0.09), ("Canada", 0.06),
    ("France", 0.06), ("Australia", 0.05), ("Japan", 0.05), ("Poland", 0.05), ("Sweden", 0.04),
    ("India", 0.07), ("Brazil", 0.05),
)  # fmt: skip
FIRST_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "James", "Mia", "Lucas", "Yuki",
    "Haruto", "Zofia", "Jakub", "Elsa", "Oskar", "Priya", "Arjun", "Camille", "Louis", "Ana",
    "Mateus", "Hannah", "Felix", "Chloe", "Ethan", "Amara", "Kenji", "Ingrid", "Mateo",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Johnson", "Brown", "Garcia", "Miller", "Davis", "Tanaka", "Sato", "Kowalski",
    "Nowak", "Andersson", "Johansson", "Patel", "Sharma", "Martin", "Bernard", "Silva",
    "Santos", "Müller", "Schmidt", "Wilson", "Taylor", "Nguyen", "O'Brien", "Rossi",
)  # fmt: skip
COMPANY_WORDS = (
    "Acme", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Hooli", "Vandelay", "Soylent",
    "Cyberdyne", "Tyrell", "Wonka", "Massive", "Northwind", "Contoso", "Fabrikam", "Pied Piper",
)  # fmt: skip
COMPANY_SUFFIXES = ("Inc", "Labs", "Group", "GmbH", "Ltd", "Systems", "Analytics", "AB", "S.A.")
SOURCES = (
    "ORGANIC_SEARCH",
    "PAID_SEARCH",
    "SOCIAL_MEDIA",
    "EMAIL_MARKETING",
    "REFERRALS",
    "DIRECT_TRAFFIC",
)

# Funnel pages: (path, title, track event fired on the page or None).
AWARENESS_PAGES = (
    ("/", "Home", None),
    ("/blog/what-is-lead-scoring", "What is lead scoring?", None),
    ("/blog/mql-vs-sql", "MQL vs SQL", None),
    ("/blog/warehouse-native-marketing", "Warehouse-native marketing", None),
    ("/blog/decay-your-scores", "Why scores should decay", None),
    ("/about", "About us", None),
)
CONSIDERATION_PAGES = (
    ("/product", "Product overview", None),
    ("/product/integrations", "Integrations", None),
    (
        "/downloads/lead-scoring-whitepaper",
        "Whitepaper: Lead scoring that sales trusts",
        "Whitepaper Downloaded",
    ),
    ("/downloads/roi-ebook", "Ebook: The ROI of scoring", "Ebook Downloaded"),
    ("/case-studies/globex", "Case study: Globex", "Case Study Downloaded"),
    ("/webinars/scoring-in-the-warehouse", "Webinar: Scoring in the warehouse", "Webinar Attended"),
    ("/guides/implementation-guide", "Implementation guide", "Guide Downloaded"),
)
DECISION_PAGES = (
    ("/pricing", "Pricing", None),
    ("/pricing/enterprise", "Enterprise pricing", None),
    ("/demo", "Request a demo", "Demo Requested"),
    ("/contact-sales", "Contact sales", "Contact Form Submitted"),
)
SOCIAL_EVENTS = ("Social Followed", "Social Shared", "Social Commented")
SITE = "https://www.example-scoring.com"


@dataclass(frozen=True)
class SynthConfig:
    contacts: int = 1000
    seed: int = 42
    end: date = field(default_factory=lambda: datetime.now(UTC).date())
    days: int = 180
    sessions_per_contact: float = 6.3
    campaign_every_days: int = 14
    dirty_share: float = 0.02

    def __post_init__(self) -> None:
        if not 0.0 <= self.dirty_share <= 1.0:
            raise ValueError(f"dirty_share must be between 0 and 1, got {self.dirty_share}")

    @property
    def start(self) -> date:
        return self.end - timedelta(days=self.days)


@dataclass
class ContactBundle:
    """One contact and everything it did, as the CRM and the analytics export would hold it."""

    index: int
    persona: str
    propensity: float
    contact: dict[str, Any]
    email_events: list[dict[str, Any]]
    web_events: list[dict[str, Any]]
    dirty: str | None = None  # the dirty kind this contact carries, if any
    extra_contacts: list[dict[str, Any]] = field(default_factory=list)
    raw_lines: list[tuple[str, str]] = field(default_factory=list)  # (day, line) for the export


def iso(moment: datetime) -> str:
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def _pick_weighted(rng: random.Random, items: tuple[tuple[str, float], ...]) -> str:
    return rng.choices([i[0] for i in items], weights=[i[1] for i in items])[0]


def _slug(text: str) -> str:
    """ASCII letters and digits only (Müller -> muller), as most mail systems want."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def generate(config: SynthConfig) -> Iterator[ContactBundle]:
    """Contacts with their histories, one at a time, in index order."""
    for index in range(config.contacts):
        yield make_contact(config, index)


@dataclass
class _Person:
    """Who a synthetic contact is, before anything happens to them."""

    persona: Persona
    propensity: float
    first: str
    last: str
    company: str
    email: str
    created: datetime
    dormant_after: datetime  # no activity after this (an inactivity gap), or the window's end


def make_contact(config: SynthConfig, index: int) -> ContactBundle:
    """Contact ``index`` of the dataset with its whole history (deterministic for seed+index)."""
    rng = random.Random(f"{config.seed}:{index}")
    window_start = datetime.combine(config.start, time(), tzinfo=UTC)
    window_end = datetime.combine(config.end, time(), tzinfo=UTC)
    person = _person(rng, index, window_start, window_end)
    web_events, decision_hits = _web_history(rng, config, person, window_start, window_end)
    email_events = _email_history(rng, config, person)
    stages = _conversions(rng, person, decision_hits, window_end)

    properties: dict[str, Any] = {
        "email": person.email,
        "firstname": person.first,
        "lastname": person.last,
        "company": person.company,
        "jobtitle": rng.choice(person.persona.titles),
        "industry": rng.choice(person.persona.industries),
        "numemployees": rng.choice(person.persona.sizes),
        "country": _pick_weighted(rng, COUNTRIES),
        "hs_analytics_source": rng.choice(SOURCES),
        "lifecyclestage": list(stages)[-1],
    }
    for stage, moment in stages.items():
        properties[f"hs_lifecyclestage_{stage}_date"] = iso(moment)
    contact = {
        "properties": properties,
        "createdAt": iso(person.created),
        "updatedAt": iso(max(stages.values())),
    }
    bundle = ContactBundle(
        index, person.persona.name, round(person.propensity, 4), contact, email_events, web_events
    )
    dirty_rng = random.Random(f"{config.seed}:{index}:dirty")
    if dirty_rng.random() < config.dirty_share:
        _make_dirty(dirty_rng, bundle, person, window_end)
    return bundle


def _make_dirty(
    rng: random.Random, bundle: ContactBundle, person: _Person, window_end: datetime
) -> None:
    """Give the contact one dirty record of a random kind."""
    kind = rng.choice(DIRTY_KINDS)
    bundle.dirty = kind
    properties = bundle.contact["properties"]
    day = (person.created.date()).isoformat()
    sample = {
        "type": "page",
        "anonymousId": _uuid(rng),
        "messageId": f"ajs-{_uuid(rng)}",
        "timestamp": iso(person.created),
        "properties": {"path": "/pricing", "url": SITE + "/pricing"},
    }
    if kind == "bad_email":
        properties["email"] = person.email.replace("@", rng.choice((" at ", "@@", "")))
    elif kind == "duplicate_contact":
        local, domain = person.email.split("@")
        twin = {**properties, "email": f"{local}+crm@{domain}", "lifecyclestage": "lead"}
        twin = {k: v for k, v in twin.items() if not k.startswith("hs_lifecyclestage_")}
        twin["hs_lifecyclestage_lead_date"] = iso(person.created)
        bundle.extra_contacts.append({**bundle.contact, "properties": twin})
    elif kind == "sql_name":
        properties["firstname"], properties["lastname"] = rng.choice(SQL_NAMES)
    elif kind == "long_title":
        properties["jobtitle"] = ("Senior " * 1500)[:10_000]
    elif kind == "unknown_email_type":
        bundle.email_events.append(
            _email_event(
                rng,
                {"recipient": person.email, "portalId": 62515, "appId": 113},
                "MPP_MACHINE_OPEN",
                person.created + timedelta(hours=1),
            )
        )
    elif kind == "malformed_json":
        line = json.dumps(sample, separators=(",", ":"))
        bundle.raw_lines.append((day, line[: len(line) // 2]))
    elif kind == "duplicate_event" and bundle.web_events:
        replayed = json.dumps(bundle.web_events[0], ensure_ascii=False, separators=(",", ":"))
        bundle.raw_lines.append((bundle.web_events[0]["timestamp"][:10], replayed))
    elif kind == "duplicate_event":
        bundle.raw_lines.extend([(day, json.dumps(sample, separators=(",", ":")))] * 2)
    elif kind == "unknown_event_type":
        bundle.raw_lines.append((day, json.dumps({**sample, "type": "purchase"})))
    elif kind == "future_event":
        future = window_end + timedelta(days=3650)
        bundle.raw_lines.append((day, json.dumps({**sample, "timestamp": iso(future)})))
    elif kind == "huge_event":
        huge = {**sample, "properties": {"title": "x" * 100_000}}
        bundle.raw_lines.append((day, json.dumps(huge)))


def _person(
    rng: random.Random, index: int, window_start: datetime, window_end: datetime
) -> _Person:
    persona = rng.choices(PERSONAS, weights=[p.weight for p in PERSONAS])[0]
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    company = f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_SUFFIXES)}"
    if persona.name == "student":
        domain = rng.choice(("gmail.com", "outlook.com", "student.example.edu"))
    else:
        domain = f"{_slug(company)}.example.com"
    span = (window_end - window_start).total_seconds()
    dormant = rng.random() < 0.35
    return _Person(
        persona=persona,
        propensity=rng.betavariate(*persona.propensity),
        first=first,
        last=last,
        company=company,
        email=f"{_slug(first)}.{_slug(last)}.{index}@{domain}",
        created=window_start + timedelta(seconds=rng.uniform(0, span * 0.85)),
        dormant_after=window_end - timedelta(days=rng.uniform(0, 120)) if dormant else window_end,
    )


def _web_history(
    rng: random.Random,
    config: SynthConfig,
    person: _Person,
    window_start: datetime,
    window_end: datetime,
) -> tuple[list[dict[str, Any]], int]:
    """Segment events of the person's sessions, and how many decision-stage forms they sent.

    The more likely a buyer, the more sessions, the deeper the pages and the likelier a form.
    Visits before the ``identify`` call carry only the anonymousId; that is what stitching undoes.
    """
    p = person.propensity
    mean_sessions = config.sessions_per_contact * (0.4 + 1.6 * p)
    session_count = max(1, round(rng.expovariate(1 / mean_sessions)))
    active_span = max(1.0, (person.dormant_after - window_start).total_seconds())
    sessions = sorted(
        window_start + timedelta(seconds=rng.uniform(0, active_span)) for _ in range(session_count)
    )
    anonymous_id = _uuid(rng)
    user_id = f"u_{uuid.UUID(int=rng.getrandbits(128), version=4).hex[:16]}"
    identify_at: datetime | None = None
    if rng.random() < 0.85:
        # Identified at sign-up (contact creation) or at the first visit after it; earlier
        # visits stay anonymous.
        identify_at = max(person.created, sessions[0]) if rng.random() < 0.7 else person.created
    context = {
        "library": {"name": "analytics.js", "version": "4.1.0"},
        "userAgent": (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/125.0 Safari/537.36"
        ),
        "ip": f"198.51.100.{rng.randint(1, 254)}",
        "locale": "en-US",
    }
    traits = {
        "email": person.email,
        "firstName": person.first,
        "lastName": person.last,
        "company": person.company,
    }
    events: list[dict[str, Any]] = []
    identified = False
    decision_hits = 0

    def emit(kind: str, at: datetime, **fields: Any) -> None:
        if at >= window_end:
            return  # a session that ran past the export's end: not in this export
        event: dict[str, Any] = {
            "type": kind,
            "anonymousId": anonymous_id,
            "messageId": f"ajs-{uuid.UUID(int=rng.getrandbits(128), version=4).hex}",
            "timestamp": iso(at),
            "sentAt": iso(at + timedelta(milliseconds=rng.randint(5, 60))),
            "receivedAt": iso(at + timedelta(milliseconds=rng.randint(80, 900))),
            "context": dict(context),
        }
        if identified:
            event["userId"] = user_id
        event.update(fields)
        events.append(event)

    stage_weights = (
        1.0,
        0.1 + 0.9 * p,
        0.02 + 0.9 * p**2,
        0.8 if person.persona.special_pages else 0.0,
        0.08,
    )
    for at in sessions:
        if identify_at is not None and not identified and at >= identify_at:
            identified = True
            emit("identify", at, traits=traits)
        for _ in range(max(1, round(rng.expovariate(1 / (1.8 + 3.0 * p))))):
            at += timedelta(seconds=rng.uniform(15, 400))
            stage = rng.choices(
                ("awareness", "consideration", "decision", "special", "social"),
                weights=stage_weights,
            )[0]
            if stage == "social":
                emit(
                    "track", at, event=rng.choice(SOCIAL_EVENTS), properties={"network": "linkedin"}
                )
                continue
            if stage == "special":
                path = rng.choice(person.persona.special_pages)
                title, track = path.strip("/").replace("/", " ").title(), None
            else:
                pool = {
                    "awareness": AWARENESS_PAGES,
                    "consideration": CONSIDERATION_PAGES,
                    "decision": DECISION_PAGES,
                }[stage]
                path, title, track = rng.choice(pool)
            page = {
                "path": path,
                "url": SITE + path,
                "title": title,
                "referrer": "https://www.google.com/",
                "search": "",
            }
            emit("page", at, name=title, properties=dict(page), context={**context, "page": page})
            # Most visitors read a gated page without converting; keen ones fill the form.
            if track and rng.random() < 0.2 + 0.5 * p:
                if stage == "decision":
                    decision_hits += 1
                emit(
                    "track",
                    at + timedelta(seconds=rng.uniform(5, 90)),
                    event=track,
                    properties={"path": path},
                )
        if identify_at is not None and not identified and at >= identify_at:
            identified = True
            emit("identify", at, traits=traits)
    return events, decision_hits


def _email_history(
    rng: random.Random, config: SynthConfig, person: _Person
) -> list[dict[str, Any]]:
    """HubSpot email events: a campaign every N days to a contact who exists and still listens."""
    p = person.propensity
    events: list[dict[str, Any]] = []
    hard_bounces = rng.random() < 0.03
    campaign_day = config.start + timedelta(days=3)
    campaign_no = 0
    while campaign_day < config.end:
        campaign_no += 1
        sent = datetime.combine(campaign_day, time(9), tzinfo=UTC) + timedelta(
            minutes=rng.randint(0, 120)
        )
        campaign_day += timedelta(days=config.campaign_every_days)
        if (
            sent < person.created
            or sent > person.dormant_after + timedelta(days=60)
            or rng.random() > 0.8
        ):
            continue
        base = {
            "recipient": person.email,
            "portalId": 62515,
            "appId": 113,
            "appName": "BatchEmail",
            "emailCampaignId": 1000 + campaign_no,
        }
        events.append(_email_event(rng, base, "SENT", sent))
        if hard_bounces:
            bounced = sent + timedelta(seconds=20)
            events.append(
                _email_event(rng, base, "BOUNCE", bounced, category="HARD_BOUNCE", status="5.1.1")
            )
            break
        events.append(
            _email_event(rng, base, "DELIVERED", sent + timedelta(seconds=rng.randint(2, 30)))
        )
        if rng.random() < 0.12 + 0.5 * p:
            opened = sent + timedelta(minutes=rng.randint(3, 3000))
            events.append(
                _email_event(
                    rng,
                    base,
                    "OPEN",
                    opened,
                    duration=rng.randint(500, 30000),
                    filteredEvent=rng.random() < 0.05,
                )
            )
            if rng.random() < 0.08 + 0.45 * p:
                url = SITE + rng.choice(CONSIDERATION_PAGES + DECISION_PAGES)[0]
                events.append(
                    _email_event(
                        rng, base, "CLICK", opened + timedelta(seconds=rng.randint(2, 120)), url=url
                    )
                )
        if rng.random() < 0.004:
            events.append(
                _email_event(rng, base, "SPAMREPORT", sent + timedelta(hours=rng.randint(1, 48)))
            )
        if rng.random() < 0.01 + 0.04 * (1 - p):
            events.append(
                _email_event(
                    rng,
                    base,
                    "STATUSCHANGE",
                    sent + timedelta(hours=rng.randint(1, 72)),
                    subscriptions=[{"id": 1, "status": "UNSUBSCRIBED"}],
                    portalSubscriptionStatus="UNSUBSCRIBED",
                    source="SOURCE_RECIPIENT",
                )
            )
            break  # no more campaigns to someone who unsubscribed
    return events


def _email_event(
    rng: random.Random, base: dict[str, Any], kind: str, at: datetime, **fields: Any
) -> dict[str, Any]:
    return {"id": _uuid(rng), "created": epoch_ms(at), "type": kind, **base, **fields}


def _conversions(
    rng: random.Random, person: _Person, decision_hits: int, window_end: datetime
) -> dict[str, datetime]:
    """Lifecycle stages reached and when: likelier with propensity and decision-stage forms.

    These are the labels backtests judge a scoring model by; scoring never reads them.
    """
    stages: dict[str, datetime] = {"lead": person.created}
    intent = min(1.0, person.propensity + 0.08 * decision_hits)
    at = person.created
    for stage, chance in (
        ("marketingqualifiedlead", intent**1.3),
        ("salesqualifiedlead", 0.25 + 0.6 * intent),
        ("opportunity", 0.3 + 0.5 * intent),
        ("customer", 0.2 + 0.4 * intent),
    ):
        if rng.random() >= chance:
            break
        at = at + timedelta(days=rng.uniform(3, 40))
        if at >= window_end:
            break
        stages[stage] = at
    return stages
