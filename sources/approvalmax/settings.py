"""The API's rules and the table of endpoints: data only, so a new document type is one line."""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class DocumentType:
    """One paged document collection of a company."""

    resource: str  # resource name = table name
    path: str  # below /api/v1/companies/{company_id}/


DOCUMENT_TYPES: tuple[DocumentType, ...] = (
    DocumentType("xero_bills", "xero/bills"),
    DocumentType("xero_purchase_orders", "xero/purchase-orders"),
    DocumentType("xero_credit_notes", "xero/credit-notes"),
    DocumentType("xero_sales_invoices", "xero/sales-invoices"),
    DocumentType("xero_batch_payments", "xero/batch-payments"),
    DocumentType("xero_quotes", "xero/quotes"),
    DocumentType("standalone_documents", "standalone/documents"),
)

COMPANIES_RESOURCE = "companies"
USER_PROFILES_RESOURCE = "user_profiles"
USER_PROFILES_PATH = "userProfiles"

RESOURCE_NAMES: tuple[str, ...] = (
    COMPANIES_RESOURCE,
    USER_PROFILES_RESOURCE,
    *(doc.resource for doc in DOCUMENT_TYPES),
)
