"""The API's rules and the table of endpoints: data only, so a new document type is one line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# dlt's data type names (dlt.common.data_types.TDataType), spelled here so this module needs no dlt.
TDataType = Literal["text", "double", "bigint", "bool", "timestamp"]

DEFAULT_API_BASE_URL = "https://public-api.approvalmax.com"
DEFAULT_IDENTITY_BASE_URL = "https://identity.approvalmax.com"
TOKEN_PATH = "/connect/token"
AUTHORIZE_PATH = "/connect/authorize"
DEFAULT_SCOPES = "https://www.approvalmax.com/scopes/public_api/read offline_access"

# Document lists are paged with `limit` (at most 100) and an opaque `continuationToken`.
PAGE_LIMIT = 100
COMPANIES_PATH = "/api/v1/companies"
COMPANY_PATH = "/api/v1/companies/{company_id}"
PING_PATH = "/ping"

# The incremental filter; inclusive, ISO 8601 (a guess: never observed in use).
MODIFIED_FILTER = "modifiedAtOrAfter"
# The field it filters on, and the one we keep the cursor of.
MODIFIED_FIELD = "modifiedAt"

# Refresh tokens live 30 days; a rotated one keeps working 1 hour (we use 55 minutes of it).
REFRESH_TOKEN_LIFETIME_DAYS = 30
REFRESH_GRACE_MINUTES = 55


# Column types fixed up front (snake_case names), so a first page of whole numbers or nulls
# cannot pick a type that later values break. Fields as the API documents them.
TEXT: TDataType = "text"
DOUBLE: TDataType = "double"
BIGINT: TDataType = "bigint"
BOOL: TDataType = "bool"
TIMESTAMP: TDataType = "timestamp"
ColumnTypes = dict[str, TDataType]

ACCOUNTING_COLUMNS: ColumnTypes = {
    "document_number": TEXT,
    "friendly_name": TEXT,
    "external_url": TEXT,
    "contact_id": TEXT,
    "contact": TEXT,
    "sub_total": DOUBLE,
    "total_tax": DOUBLE,
    "total": DOUBLE,
    "remaining_balance": DOUBLE,
    "currency_code": TEXT,
    "exchange_rate": DOUBLE,
    "tax_type": TEXT,
    "date": TIMESTAMP,
    "created_at": TIMESTAMP,
    "modified_at": TIMESTAMP,
    "decision_date": TIMESTAMP,
    "request_status": TEXT,
    "origin": TEXT,
}
# `date`, `dueDate` and `deliveryDate` are dates in the spec (`2025-03-07`); they load as
# midnight-UTC timestamps, the same type a date-time form of them gets.
BILL_COLUMNS: ColumnTypes = {**ACCOUNTING_COLUMNS, "due_date": TIMESTAMP, "amount_due": DOUBLE}
PURCHASE_ORDER_COLUMNS: ColumnTypes = {**ACCOUNTING_COLUMNS, "delivery_date": TIMESTAMP, "billed": BOOL}
STANDALONE_COLUMNS: ColumnTypes = {
    "document_name": TEXT,
    "description": TEXT,
    "friendly_name": TEXT,
    "request_status": TEXT,
    "created_at": TIMESTAMP,
    "modified_at": TIMESTAMP,
    "decision_date": TIMESTAMP,
}
EVENT_COLUMNS: ColumnTypes = {
    "event_type": TEXT,
    "event_date": TIMESTAMP,
    "author_id": TEXT,
    "is_system": BOOL,
    "comment": TEXT,
}
# Child tables by path below the document (dlt's nested table names are parent__child).
ACCOUNTING_CHILDREN: dict[tuple[str, ...], ColumnTypes] = {
    ("line_items",): {
        "description": TEXT,
        "quantity": DOUBLE,
        "item_price": DOUBLE,
        "amount": DOUBLE,
        "account_code": TEXT,
        "account_id": TEXT,
        "item_code": TEXT,
        "item_id": TEXT,
        "tax_code": TEXT,
        "tax_rate": DOUBLE,
        "discount_rate": DOUBLE,
    },
    ("line_items", "tracking"): {"category_id": TEXT, "category_name": TEXT, "option_id": TEXT, "option_name": TEXT},
    ("attachments",): {"attachment_id": TEXT, "file_name": TEXT, "file_size": BIGINT},
    ("events",): EVENT_COLUMNS,
}
STANDALONE_CHILDREN: dict[tuple[str, ...], ColumnTypes] = {
    ("additional_information",): {"additional_field_name": TEXT, "value": TEXT},
    ("events",): EVENT_COLUMNS,
}


@dataclass(frozen=True)
class DocumentType:
    """One paged document collection of a company: a row of the endpoint table."""

    resource: str  # resource name = table name
    path: str  # the list, below /api/v1/companies/{company_id}/; one document is `{path}/{requestId}`
    columns: ColumnTypes = field(default_factory=lambda: ACCOUNTING_COLUMNS)
    children: dict[tuple[str, ...], ColumnTypes] = field(default_factory=lambda: ACCOUNTING_CHILDREN)
    # The webhook events' `RequestType`s that name a document of this type.
    request_types: tuple[str, ...] = ()

    def document_path(self, request_id: str) -> str:
        """One document by id, below /api/v1/companies/{company_id}/."""
        return f"{self.path}/{request_id}"


# Webhook RequestTypes: `XeroBill` and `QBooksExpense` are documented; the others follow their pattern (a guess,
# so an event of an unknown type is logged and left to the next sweep).
DOCUMENT_TYPES: tuple[DocumentType, ...] = (
    DocumentType("xero_bills", "xero/bills", BILL_COLUMNS, request_types=("XeroBill",)),
    DocumentType(
        "xero_purchase_orders", "xero/purchase-orders", PURCHASE_ORDER_COLUMNS, request_types=("XeroPurchaseOrder",)
    ),
    DocumentType("xero_credit_notes", "xero/credit-notes", request_types=("XeroCreditNote", "XeroCreditNotePayable")),
    DocumentType("xero_sales_invoices", "xero/sales-invoices", request_types=("XeroSalesInvoice", "XeroInvoice")),
    DocumentType("xero_batch_payments", "xero/batch-payments", request_types=("XeroBatchPayment", "XeroAmaxPayBatch")),
    DocumentType("xero_quotes", "xero/quotes", request_types=("XeroQuote",)),
    DocumentType(
        "standalone_documents",
        "standalone/documents",
        STANDALONE_COLUMNS,
        STANDALONE_CHILDREN,
        request_types=("StandaloneRequest", "Standalone"),
    ),
)


def resource_for_request_type(document_types: tuple[DocumentType, ...], request_type: str) -> str | None:
    """The table a webhook event's document loads into, or None for a type no document type names."""
    return next((doc.resource for doc in document_types if request_type in doc.request_types), None)


COMPANIES_RESOURCE = "companies"
USER_PROFILES_RESOURCE = "user_profiles"
USER_PROFILES_PATH = "userProfiles"

RESOURCE_NAMES: tuple[str, ...] = (
    COMPANIES_RESOURCE,
    USER_PROFILES_RESOURCE,
    *(doc.resource for doc in DOCUMENT_TYPES),
)
