"""The DocumentSink interface: what a page of documents becomes on its way to dlt.

A page goes (1) from the client as raw bytes with its envelope, (2) through `prepare` in its
fetch thread (parsed by Arrow or by json); documents already parsed (the webhook listener's reads
by id) go through `prepare_documents` on dlt's extract thread instead; (3) through `add` on that thread,
where the company's `Admission` (its cursor) says which documents to keep and they join the
current batch, and (4) out of `flush` to dlt as Arrow tables or rows, which dlt merges into the
warehouse. The implementations are `row_sink.RowSink` and `arrow.ArrowSink`; `sinks.open_sink`
picks one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from .pages import Page

T = TypeVar("T")
Version = tuple[object, datetime | None]  # (requestId, modifiedAt) of one document


@dataclass(frozen=True)
class Prepared(Generic[T]):
    """A page parsed in its fetch thread, and when its request went out."""

    requested_at: datetime
    content: T


class Admission(Protocol):
    """Which documents of a page load: a company's cursor (`CompanyCursor`), or `EVERY_DOCUMENT`."""

    def observe(self, versions: Iterable[Version], requested_at: datetime) -> list[bool]: ...


class EveryDocument:
    """Admits every document and remembers nothing: documents read by id are the current
    versions, so there is no floor, window or loaded version to check them against."""

    def observe(self, versions: Iterable[Version], requested_at: datetime) -> list[bool]:
        return [True for _version in versions]


EVERY_DOCUMENT = EveryDocument()


class DocumentSink(Protocol):
    def prepare(self, page: Page) -> Prepared[Any]:
        """Parse a page; runs in the fetch threads, so it touches no shared state but what it only reads."""
        ...

    def prepare_documents(self, documents: Sequence[dict[str, Any]], requested_at: datetime) -> Prepared[Any]:
        """Documents already parsed, as `prepare` would have made them of a page."""
        ...

    def add(self, company_id: str, page: Prepared[Any], admission: Admission) -> None:
        """Keep the documents `admission` wants; on the extract thread."""
        ...

    def flush(self, final: bool = False) -> Iterator[Any]:
        """Items for dlt: what is ready (everything when `final`)."""
        ...
