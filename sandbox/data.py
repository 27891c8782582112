"""Deterministic synthetic ApprovalMax data, generated per document on demand so any scale fits in memory."""

from __future__ import annotations

import bisect
import hashlib
import random
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

SPAN = timedelta(days=540)
# The history ends today (midnight UTC), so pending requests look as they would on a live
# account; the data is the same for every sandbox started on the same day.
EPOCH = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - SPAN
TICKS_PER_SECOND = 10_000_000  # .NET ticks: 100 ns, the 7 fractional digits of ASP.NET timestamps
SYSTEM_USER = "00000000-0000-0000-0000-000000000000"
# The spec types `date`, `dueDate` and `deliveryDate` as `format: date` (no time part);
# the `date_format` knob serves them as midnight date-times instead (sandbox/variants.py).
DATE_FORMAT = "%Y-%m-%d"
DATE_FIELDS = ("date", "dueDate", "deliveryDate")

# Document types served, with their share of a company's documents.
TYPE_WEIGHTS: dict[str, int] = {
    "xero/bills": 30,
    "xero/purchase-orders": 25,
    "xero/credit-notes": 8,
    "xero/sales-invoices": 15,
    "xero/batch-payments": 5,
    "xero/quotes": 7,
    "standalone/documents": 10,
}
# Types whose documents leave out `companyId`, as some live endpoints do.
TYPES_WITHOUT_COMPANY_ID = frozenset({"xero/batch-payments", "standalone/documents"})
# Types whose `requestStatus` is the spec's `{name, value}` object instead of a string.
TYPES_WITH_STATUS_OBJECT = frozenset({"xero/quotes"})

STATUSES = ("draft", "onApproval", "approved", "rejected", "cancelled")
STATUS_WEIGHTS = (5, 20, 55, 10, 10)
CURRENCIES = ("NZD", "AUD", "USD", "GBP")
# Units of each currency per NZD. A document's `exchangeRate` is Xero's CurrencyRate: units of the
# document's currency per one unit of the organisation's base currency (1.0 in the base currency),
# so its base amount is total / exchangeRate. Company i keeps its books in CURRENCIES[i % 4].
PER_NZD = {"NZD": 1.0, "AUD": 0.92, "USD": 0.60, "GBP": 0.47}


def base_currency(company_index: int) -> str:
    return CURRENCIES[company_index % len(CURRENCIES)]


def exchange_rate(base: str, currency: str, jitter: float) -> float:
    """Units of `currency` per one `base`, within 2% of the mid rate (1.0 for the base itself);
    `jitter` in [0, 1) places it in that range."""
    if currency == base:
        return 1.0
    return round(PER_NZD[currency] / PER_NZD[base] * (0.98 + 0.04 * jitter), 6)


ACCOUNTS = (
    ("200", "Sales"),
    ("400", "Advertising"),
    ("429", "General Expenses"),
    ("453", "Office Supplies"),
    ("461", "Printing"),
    ("493", "Travel - National"),
    ("720", "Computer Equipment"),
)
TRACKING = {
    "Region": ("North", "South", "East", "West"),
    "Department": ("Finance", "Operations", "Marketing", "IT"),
}
CONTACTS = (
    "Acme Supplies",
    "Blue Fern Ltd",
    "Kauri Consulting",
    "Pohutukawa Print",
    "Tui Travel",
    "Southern Cross IT",
    "Harbour Freight",
    "Kiwi Office Co",
    "Ruru Legal",
    "Weta Catering",
)
FIRST = ("Aroha", "Ben", "Chloe", "Dev", "Emma", "Finn", "Grace", "Hemi", "Isla", "Jack", "Kiri", "Liam")
LAST = ("Ngata", "Smith", "Wong", "Patel", "Brown", "Taylor", "Wilson", "Te Awa", "Singh", "Clark")


def stable_uuid(*parts: object) -> str:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=16).digest()
    return str(uuid.UUID(bytes=digest, version=4))


def stable_rng(*parts: object) -> random.Random:
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))


def to_ticks(value: datetime) -> int:
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * TICKS_PER_SECOND + delta.microseconds * 10


def from_ticks(ticks: int) -> datetime:
    return EPOCH + timedelta(microseconds=ticks // 10)


def format_ticks(ticks: int, offset_minutes: int = 0) -> str:
    """ASP.NET style: 7 fractional digits, `Z` or an offset."""
    moment = from_ticks(ticks)
    if offset_minutes:
        moment = moment.astimezone(timezone(timedelta(minutes=offset_minutes)))
    base = moment.strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{ticks % TICKS_PER_SECOND:07d}"
    if not offset_minutes:
        return f"{base}.{fraction}Z"
    sign = "+" if offset_minutes > 0 else "-"
    hours, minutes = divmod(abs(offset_minutes), 60)
    return f"{base}.{fraction}{sign}{hours:02d}:{minutes:02d}"


def parse_filter_time(value: str) -> int:
    """Ticks from an ISO 8601 filter value; ValueError when unreadable."""
    text = value.strip().replace("Z", "+00:00")
    fraction_ticks = 0
    if "." in text:
        head, rest = text.split(".", 1)
        digits = ""
        while rest and rest[0].isdigit():
            digits, rest = digits + rest[0], rest[1:]
        fraction_ticks = int((digits + "0000000")[:7]) if digits else 0
        text = head + rest
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return to_ticks(moment.astimezone(UTC).replace(microsecond=0)) + fraction_ticks


@dataclass
class Company:
    company_id: str
    name: str
    index: int


@dataclass
class DocHeader:
    """What listing needs without building the document: id, generator index, change time."""

    request_id: str
    index: int
    created: int
    modified: int
    contact: int = 0  # index into CONTACTS
    pending: bool = False  # on approval now: submitted in the last weeks


# Governance patterns planted in every company, at fixed document indices; random documents
# never show them (approvers differ from requesters, one contact's documents are days apart).
DAY = 86_400 * TICKS_PER_SECOND
NEAR_DUPLICATE_WINDOW = DAY  # same contact, type and currency, totals within 1%, created within a day
PLANTED: dict[tuple[str, int], str] = {
    ("xero/bills", 0): "self_approval",
    ("xero/bills", 1): "self_approval",
    ("xero/bills", 2): "reject_then_reapprove",
    ("xero/bills", 3): "reject_then_reapprove",
    ("xero/bills", 4): "near_duplicate",
    ("xero/bills", 5): "near_duplicate",
    ("xero/purchase-orders", 0): "change_after_approval",
    ("xero/purchase-orders", 1): "change_after_approval",
}


@dataclass
class Collection:
    """One company's documents of one type, ordered by request id (not by change time)."""

    headers: list[DocHeader] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    by_id: dict[str, DocHeader] = field(default_factory=dict)
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)

    def insert(self, header: DocHeader) -> None:
        position = bisect.bisect_left(self.ids, header.request_id)
        self.ids.insert(position, header.request_id)
        self.headers.insert(position, header)
        self.by_id[header.request_id] = header

    def remove(self, request_id: str) -> str:
        header = self.by_id.pop(request_id)
        position = self.ids.index(request_id)
        del self.ids[position]
        del self.headers[position]
        self.overrides.pop(request_id, None)
        return header.request_id


class Dataset:
    """The sandbox's ground truth. Documents are rebuilt from (seed, company, type, index);
    changed and added ones live in `overrides`."""

    def __init__(self, seed: int = 7, companies: int = 4, documents_per_company: int = 200) -> None:
        self.seed = seed
        self.lock = threading.RLock()
        self.companies = [Company(stable_uuid(seed, "company", i), f"Sandbox Org {i + 1}", i) for i in range(companies)]
        self.base_currencies = {company.company_id: base_currency(company.index) for company in self.companies}
        self.users: dict[str, list[dict[str, Any]]] = {}
        self.collections: dict[tuple[str, str], Collection] = {}
        total_weight = sum(TYPE_WEIGHTS.values())
        for company in self.companies:
            self.users[company.company_id] = self._users(company)
            for doc_type, weight in TYPE_WEIGHTS.items():
                count = max(1, documents_per_company * weight // total_weight)
                if doc_type == "xero/bills":
                    count = max(count, 6)  # room for the planted patterns
                collection = Collection()
                headers = [self._header(company, doc_type, i) for i in range(count)]
                _spread_contacts(headers, doc_type)
                headers.sort(key=lambda h: h.request_id)
                collection.headers = headers
                collection.ids = [h.request_id for h in headers]
                collection.by_id = {h.request_id: h for h in headers}
                self.collections[(company.company_id, doc_type)] = collection
        self._mutations = 0
        self.touched: list[tuple[str, str, str]] = []  # the last mutate's documents, for its webhooks

    # --- generation ---------------------------------------------------------------------

    def _users(self, company: Company) -> list[dict[str, Any]]:
        rng = stable_rng(self.seed, "users", company.company_id)
        users = []
        for i in range(6 + company.index % 3):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            users.append(
                {
                    "userId": stable_uuid(self.seed, "user", company.company_id, i),
                    "firstName": first,
                    "lastName": last,
                    "email": f"{first.lower()}.{last.lower().replace(' ', '')}{i}@example.com",
                }
            )
        return users

    def _header(self, company: Company, doc_type: str, index: int) -> DocHeader:
        rng = stable_rng(self.seed, "header", company.company_id, doc_type, index)
        created = rng.randrange(0, to_ticks(EPOCH + SPAN) - 30 * 86_400 * TICKS_PER_SECOND)
        modified = created + rng.randrange(0, 20 * 86_400 * TICKS_PER_SECOND)
        contact = rng.randrange(len(CONTACTS))
        pending = (doc_type, index) not in PLANTED and rng.random() < 0.12
        if pending:  # waiting requests are recent, as on a live account
            created = to_ticks(EPOCH + SPAN) - rng.randrange(2 * DAY, 45 * DAY)
            modified = created + rng.randrange(0, DAY)
        if PLANTED.get((doc_type, index)) == "near_duplicate":
            twin = self._header(company, doc_type, 4) if index == 5 else None
            if twin is not None:  # the second of the pair: same contact, three hours later
                created, contact = twin.created + 3 * 3600 * TICKS_PER_SECOND, twin.contact
                modified = created + 6 * 3600 * TICKS_PER_SECOND
        request_id = stable_uuid(self.seed, "doc", company.company_id, doc_type, index)
        return DocHeader(request_id, index, created, modified, contact, pending)

    def document(self, company_id: str, doc_type: str, header: DocHeader) -> dict[str, Any]:
        collection = self.collections[(company_id, doc_type)]
        override = collection.overrides.get(header.request_id)
        if override is not None:
            return override
        return self._build(company_id, doc_type, header)

    def _build(self, company_id: str, doc_type: str, header: DocHeader) -> dict[str, Any]:
        rng = stable_rng(self.seed, "doc-body", company_id, doc_type, header.index)
        users = self.users[company_id]
        status = rng.choices(STATUSES, STATUS_WEIGHTS)[0]
        if status == "onApproval" or header.pending:  # only recent documents wait
            status = "onApproval" if header.pending else "approved"
        planted = PLANTED.get((doc_type, header.index))
        if planted is not None:
            status = "approved"
        offset = 780 if header.index % 5 == 0 else 0  # some timestamps carry +13:00, NZ daylight time
        created, modified = header.created, header.modified
        decided = created + (modified - created) // 2 if status in ("approved", "rejected") else None
        requester = rng.choice(users)["userId"]
        events = self._events(rng, users, requester, status, created, decided, modified, offset)
        if planted is not None and decided is not None:
            events = self._planted_events(planted, rng, users, requester, created, decided, modified, offset)
        if doc_type == "standalone/documents":
            doc: dict[str, Any] = {
                "requestId": header.request_id,
                "documentName": rng.choice(("Expense claim", "Contract approval", "Leave request", "Capex")),
                "description": f"<p>Request {header.index}: please <b>approve</b>.</p>",
                "friendlyName": f"SA-{header.index:05d}",
                "requestStatus": status,
                "additionalInformation": [
                    {"additionalFieldName": "Cost centre", "value": rng.choice(("CC-10", "CC-20", "CC-30"))},
                    {"additionalFieldName": "Priority", "value": rng.choice(("low", "normal", "high"))},
                ],
                "events": events,
                "createdAt": format_ticks(created, offset),
                "modifiedAt": format_ticks(modified, offset),
                "decisionDate": format_ticks(decided, offset) if decided is not None else None,
            }
            return doc
        prefix = {
            "xero/bills": "BILL",
            "xero/purchase-orders": "PO",
            "xero/credit-notes": "CN",
            "xero/sales-invoices": "INV",
            "xero/batch-payments": "BP",
            "xero/quotes": "QU",
        }[doc_type]
        lines = [self._line(rng) for _ in range(rng.randint(1, 4))]
        if planted == "near_duplicate":  # the same lines, one slightly dearer
            twin_rng = stable_rng(self.seed, "near-duplicate", company_id)
            lines = [self._line(twin_rng) for _ in range(2)]
            if header.index == 5:
                lines[0] = {**lines[0], "itemPrice": round(lines[0]["itemPrice"] * 1.004, 2)}
                lines[0]["amount"] = round(lines[0]["quantity"] * lines[0]["itemPrice"], 2)
        sub_total = round(sum(line["amount"] for line in lines), 2)
        tax = round(sub_total * 0.15, 2)
        contact_index = header.contact
        # most documents are in the company's own currency; the rest in the one drawn
        drawn = "NZD" if planted == "near_duplicate" else rng.choice(CURRENCIES)
        base = self.base_currencies[company_id]
        # drawn from the request id (a uuid already random), not a generator of its own: cheap per document
        share, jitter = int(header.request_id[:8], 16) / 2**32, int(header.request_id[9:13], 16) / 2**16
        currency = drawn if planted == "near_duplicate" or share < 0.3 else base
        doc = {
            "requestId": header.request_id,
            "companyId": company_id,
            "documentNumber": "" if status == "draft" else f"{prefix}-{header.index:05d}",
            "friendlyName": f"{prefix}-{header.index:05d}",
            "externalUrl": None if status == "draft" else f"https://go.xero.com/{prefix.lower()}/{header.request_id}",
            "contactId": stable_uuid(self.seed, "contact", company_id, contact_index),
            "contact": CONTACTS[contact_index],
            "subTotal": sub_total,
            "totalTax": tax,
            "total": round(sub_total + tax, 2),
            "currencyCode": currency,
            "exchangeRate": exchange_rate(base, currency, jitter),
            "taxType": "Exclusive",
            "date": from_ticks(created).strftime(DATE_FORMAT),
            "createdAt": format_ticks(created, offset),
            "modifiedAt": format_ticks(modified, offset),
            "decisionDate": format_ticks(decided, offset) if decided is not None else None,
            "requestStatus": status,
            "origin": rng.choice(("ApprovalMax", "Xero")),
            "lineItems": lines,
            "attachments": [
                {
                    "attachmentId": stable_uuid(self.seed, "att", header.request_id, i),
                    "fileName": f"scan-{header.index}-{i}.pdf",
                    "fileSize": rng.randrange(10_000, 900_000),
                }
                for i in range(rng.choice((0, 0, 1, 2)))
            ],
            "events": events,
        }
        if doc_type == "xero/bills":
            doc["dueDate"] = from_ticks(created + 30 * 86_400 * TICKS_PER_SECOND).strftime(DATE_FORMAT)
            doc["amountDue"] = doc["total"] if status != "approved" else round(doc["total"] * rng.choice((0, 1)), 2)
        if doc_type == "xero/purchase-orders":
            doc["deliveryDate"] = from_ticks(created + 14 * 86_400 * TICKS_PER_SECOND).strftime(DATE_FORMAT)
            doc["billed"] = status == "approved" and rng.random() < 0.5
        if doc_type in TYPES_WITHOUT_COMPANY_ID:
            del doc["companyId"]
        if doc_type in TYPES_WITH_STATUS_OBJECT:
            doc["requestStatus"] = {"name": status[0].upper() + status[1:], "value": STATUSES.index(status)}
        return doc

    def _line(self, rng: random.Random) -> dict[str, Any]:
        code, name = rng.choice(ACCOUNTS)
        quantity = rng.randint(1, 10)
        price = round(rng.uniform(5, 900), 2)
        tracking = []
        for category, options in TRACKING.items():
            if rng.random() < 0.6:
                option = rng.choice(options)
                tracking.append(
                    {
                        "categoryId": stable_uuid(self.seed, "category", category),
                        "categoryName": category,
                        "optionId": stable_uuid(self.seed, "option", category, option),
                        "optionName": option,
                    }
                )
        return {
            "description": f"{name} item",
            "quantity": quantity,
            "itemPrice": price,
            "amount": round(quantity * price, 2),
            "accountCode": code,
            "accountId": stable_uuid(self.seed, "account", code),
            "itemCode": None,
            "itemId": None,
            "taxCode": "INPUT2",
            "taxRate": 15.0,
            "discountRate": None,
            "tracking": tracking,
        }

    def _events(
        self,
        rng: random.Random,
        users: list[dict[str, Any]],
        requester: str,
        status: str,
        created: int,
        decided: int | None,
        modified: int,
        offset: int,
    ) -> list[dict[str, Any]]:
        if status == "draft":
            return []
        step = max(1, (modified - created) // 6)
        events = [
            {
                "eventType": "requesterSubmitted",
                "eventDate": format_ticks(created, offset),
                "authorId": requester,
                "isSystem": False,
                "comment": None,
            }
        ]
        approver = rng.choice([u for u in users if u["userId"] != requester])["userId"]
        if status == "approved" and decided is not None:
            events.append(
                {
                    "eventType": "approverApprovedRequestApproved",
                    "eventDate": format_ticks(decided, offset),
                    "authorId": approver,
                    "isSystem": False,
                    "comment": rng.choice((None, "OK", "Approved")),
                }
            )
            events.append(
                {
                    "eventType": "pushedToSource",
                    "eventDate": format_ticks(decided + step, offset),
                    "authorId": SYSTEM_USER,
                    "isSystem": True,
                    "comment": None,
                }
            )
        elif status == "rejected" and decided is not None:
            events.append(
                {
                    "eventType": "approverRejected",
                    "eventDate": format_ticks(decided, offset),
                    "authorId": approver,
                    "isSystem": False,
                    "comment": "Please attach the quote",
                }
            )
        elif status == "cancelled":
            events.append(
                {
                    "eventType": "comment",
                    "eventDate": format_ticks(created + step, offset),
                    "authorId": requester,
                    "isSystem": False,
                    "comment": "No longer needed",
                }
            )
        return events

    def _planted_events(
        self,
        pattern: str,
        rng: random.Random,
        users: list[dict[str, Any]],
        requester: str,
        created: int,
        decided: int,
        modified: int,
        offset: int,
    ) -> list[dict[str, Any]]:
        others = [u["userId"] for u in users if u["userId"] != requester]
        approver = requester if pattern == "self_approval" else rng.choice(others)
        step = max(1, (decided - created) // 4)

        def event(kind: str, at: int, author: str, comment: str | None = None) -> dict[str, Any]:
            system = author == SYSTEM_USER
            return {
                "eventType": kind,
                "eventDate": format_ticks(at, offset),
                "authorId": author,
                "isSystem": system,
                "comment": comment,
            }

        events = [event("requesterSubmitted", created, requester)]
        if pattern == "reject_then_reapprove":
            events += [
                event("approverRejected", created + step, approver, "Wrong account code"),
                event("requesterUpdatedWithReset", created + 2 * step, requester),
                event("requesterSubmitted", created + 2 * step + 1, requester),
            ]
        events.append(event("approverApprovedRequestApproved", decided, approver, "OK"))
        if pattern == "change_after_approval":
            events.append(
                event(
                    "postApprovalChangeDetected", decided + step, SYSTEM_USER, "Amount changed in Xero after approval"
                )
            )
        events.append(event("pushedToSource", min(modified, decided + 2 * step), SYSTEM_USER))
        return events

    def planted(self) -> dict[str, list[str]]:
        """pattern -> request ids, for tests that check the analyst views find exactly these."""
        found: dict[str, list[str]] = {}
        for company in self.companies:
            for (doc_type, index), pattern in PLANTED.items():
                collection = self.collections[(company.company_id, doc_type)]
                match = [h.request_id for h in collection.headers if h.index == index]
                found.setdefault(pattern, []).extend(match)
        return found

    # --- queries and changes --------------------------------------------------------------

    def company_ids(self) -> list[str]:
        return [company.company_id for company in self.companies]

    def list_documents(
        self,
        company_id: str,
        doc_type: str,
        modified_from: int | None,
        created_from: int | None,
        status: str | None,
    ) -> list[DocHeader]:
        with self.lock:
            collection = self.collections[(company_id, doc_type)]
            result = []
            for header in collection.headers:
                if modified_from is not None and header.modified < modified_from:
                    continue
                if created_from is not None and header.created < created_from:
                    continue
                if status is not None and self._status(company_id, doc_type, header) != status:
                    continue
                result.append(header)
            return result

    def _status(self, company_id: str, doc_type: str, header: DocHeader) -> str:
        value = self.document(company_id, doc_type, header)["requestStatus"]
        if isinstance(value, dict):
            name = str(value["name"])
            return name[0].lower() + name[1:]
        return str(value)

    def all_documents(self, company_id: str, doc_type: str) -> list[dict[str, Any]]:
        with self.lock:
            collection = self.collections[(company_id, doc_type)]
            return [self.document(company_id, doc_type, header) for header in collection.headers]

    def mutate(
        self,
        modify: int,
        add: int,
        now: datetime,
        delete: int = 0,
        silent: int = 0,
        only: str | None = None,
        users: int = 0,
    ) -> dict[str, list[str]]:
        """Change `modify` existing documents and add `add` new ones per company (or in company `only`), stamped `now`.
        Changed documents get a new status, a changed amount, one line item fewer and an event.
        `delete` removes documents (their lists and `/{requestId}` forget them); `silent` changes
        a document's reference and total without moving its `modifiedAt`, a change an incremental
        run cannot see (whether the API ever does that is unverified). `users` renames that many
        user profiles per company (in company `only`): a new last name and email."""
        changed: list[str] = []
        renamed: list[str] = []
        added: list[str] = []
        deleted: list[str] = []
        silently: list[str] = []
        touched: list[tuple[str, str, str]] = []  # (company, type, request id) a webhook would name
        with self.lock:
            self._mutations += 1
            round_no = self._mutations
            for company in self.companies:
                rng = stable_rng(self.seed, "delete", round_no, company.company_id)
                for _ in range(delete):
                    doc_type = rng.choice(list(TYPE_WEIGHTS))
                    collection = self.collections[(company.company_id, doc_type)]
                    if len(collection.headers) > 1:
                        gone = collection.remove(rng.choice(collection.headers).request_id)
                        deleted.append(gone)
                        touched.append((company.company_id, doc_type, gone))
                for _ in range(silent):
                    doc_type = rng.choice(list(TYPE_WEIGHTS))
                    collection = self.collections[(company.company_id, doc_type)]
                    header = rng.choice(collection.headers)
                    doc = dict(self.document(company.company_id, doc_type, header))
                    doc["reference"] = f"silent change {round_no}"
                    if "total" in doc:
                        doc["total"] = round(float(doc["total"] or 0) + 1.0, 2)
                    collection.overrides[header.request_id] = doc
                    silently.append(header.request_id)
                    # a webhook names it though its modifiedAt stays: a list since the event misses it
                    touched.append((company.company_id, doc_type, header.request_id))
            stamp = to_ticks(now)
            for company in self.companies:
                if only is not None and company.company_id != only:
                    continue
                rng = stable_rng(self.seed, "mutate", round_no, company.company_id)
                types = list(TYPE_WEIGHTS)
                for user in rng.sample(self.users[company.company_id], min(users, len(self.users[company.company_id]))):
                    user["lastName"] = f"{user['lastName']}-{round_no}"
                    user["email"] = user["email"].replace("@", f".{round_no}@")
                    renamed.append(str(user["userId"]))
                for _ in range(modify):
                    doc_type = rng.choice(types)
                    collection = self.collections[(company.company_id, doc_type)]
                    header = rng.choice(collection.headers)
                    doc = dict(self.document(company.company_id, doc_type, header))
                    stamp += 1
                    header.modified = stamp
                    doc["modifiedAt"] = format_ticks(stamp)
                    approved = (
                        {"name": "Approved", "value": 2} if isinstance(doc["requestStatus"], dict) else "approved"
                    )
                    doc["requestStatus"] = approved
                    doc["decisionDate"] = format_ticks(stamp)
                    if doc.get("lineItems"):
                        doc["lineItems"] = [dict(line) for line in doc["lineItems"][:-1]]
                        doc["total"] = round(sum(line["amount"] for line in doc["lineItems"]) * 1.15, 2)
                    earlier = doc.get("events") or []
                    requester = earlier[0]["authorId"] if earlier else None
                    approver = next(u["userId"] for u in self.users[company.company_id] if u["userId"] != requester)
                    doc["events"] = [
                        *earlier,
                        {
                            "eventType": "approverApprovedRequestApproved",
                            "eventDate": format_ticks(stamp),
                            "authorId": approver,
                            "isSystem": False,
                            "comment": f"changed in round {round_no}",
                        },
                    ]
                    collection.overrides[header.request_id] = doc
                    changed.append(header.request_id)
                    touched.append((company.company_id, doc_type, header.request_id))
                for n in range(add):
                    doc_type = rng.choice(types)
                    collection = self.collections[(company.company_id, doc_type)]
                    index = 1_000_000 * round_no + n
                    stamp += 1
                    header = DocHeader(
                        stable_uuid(self.seed, "new", company.company_id, doc_type, index), index, stamp, stamp
                    )
                    doc = self._build(company.company_id, doc_type, header)
                    collection.insert(header)
                    collection.overrides[header.request_id] = doc
                    added.append(header.request_id)
                    touched.append((company.company_id, doc_type, header.request_id))
            self.touched = touched
        return {"modified": changed, "added": added, "deleted": deleted, "silent": silently, "users": renamed}


def _spread_contacts(headers: list[DocHeader], doc_type: str) -> None:
    """Move random documents to another contact until no two of one contact are created within
    a day of each other, so only planted pairs look like near-duplicates."""
    planted = [h for h in headers if (doc_type, h.index) in PLANTED]
    latest: dict[int, int] = {}  # contact -> newest created so far (documents come in time order)

    def free(contact: int, created: int) -> bool:
        if created - latest.get(contact, -NEAR_DUPLICATE_WINDOW - 1) <= NEAR_DUPLICATE_WINDOW:
            return False
        return all(p.contact != contact or abs(created - p.created) > NEAR_DUPLICATE_WINDOW for p in planted)

    for header in sorted((h for h in headers if (doc_type, h.index) not in PLANTED), key=lambda h: h.created):
        for shift in range(len(CONTACTS)):
            contact = (header.contact + shift) % len(CONTACTS)
            if free(contact, header.created):
                header.contact = contact
                break
        latest[header.contact] = header.created
