"""Settings from dlt's providers (`.dlt/*.toml` under [sources.approvalmax], or SOURCES__APPROVALMAX__*)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigurationException,
    LookupTraces,
)
from dlt.common.configuration.providers.toml import TomlProviderReadException
from dlt.common.configuration.specs import BaseConfiguration, CredentialsConfiguration
from dlt.common.typing import TSecretStrValue

from ..errors import first_line
from .errors import ConfigError
from .settings import (
    ACCOUNTING_CHILDREN,
    ACCOUNTING_COLUMNS,
    DEFAULT_API_BASE_URL,
    DEFAULT_IDENTITY_BASE_URL,
    DEFAULT_SCOPES,
    DOCUMENT_TYPES,
    RESOURCE_NAMES,
    STANDALONE_CHILDREN,
    STANDALONE_COLUMNS,
    DocumentType,
)

SECTIONS = ("sources", "approvalmax")
# ApprovalMax's guide says redirect URIs must be HTTPS. Nothing has to answer at this one: the
# browser ends there with the code in its address bar, and `auth login` asks for that URL.
DEFAULT_REDIRECT_URI = "https://localhost/approvalmax/callback"
SHAPES = {
    "accounting": (ACCOUNTING_COLUMNS, ACCOUNTING_CHILDREN),
    "standalone": (STANDALONE_COLUMNS, STANDALONE_CHILDREN),
}
_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
_PATH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._~-]*(/[A-Za-z0-9][A-Za-z0-9._~-]*)*$")
ENV_PREFIX = "SOURCES__APPROVALMAX__"


@configspec
class ApprovalMaxCredentials(CredentialsConfiguration):
    """The app's client id and secret, and the first refresh token (the store keeps the newest)."""

    # dlt's configspec idiom: a None default on a non-Optional type marks a required field.
    client_id: str = None  # type: ignore[assignment]
    client_secret: TSecretStrValue = None  # type: ignore[assignment]
    refresh_token: TSecretStrValue | None = None


@configspec
class ApprovalMaxSettings(BaseConfiguration):
    """Every non-destination setting of the connector; docs/configuration.md lists them."""

    api_base_url: str = DEFAULT_API_BASE_URL
    identity_base_url: str = DEFAULT_IDENTITY_BASE_URL
    credentials: ApprovalMaxCredentials = None  # type: ignore[assignment]
    token_store: str = "~/.approvalmax/tokens.json"
    # Keys that encrypt the token store (Fernet, newest first, comma-separated; a secret): none keeps it plain.
    token_key: TSecretStrValue | None = None
    lookback_minutes: float = 10.0
    # Requests in flight per company, and for the whole run (companies x concurrency, at most this).
    concurrency: int = 4
    max_concurrency: int = 32
    # Requests per minute per company (ApprovalMax reportedly allows 100); 0 turns pacing off.
    rate_limit_per_minute: int = 100
    # The window that limit counts in (the API's rule, as reported: a minute).
    rate_limit_window_seconds: float = 60.0
    request_timeout: float = 60.0
    max_attempts: int = 6
    token_refresh_skew_seconds: float = 300.0
    company_ids: list[str] | None = None
    scopes: str = DEFAULT_SCOPES
    redirect_uri: str = DEFAULT_REDIRECT_URI
    # Hand dlt Arrow tables for documents; false falls back to dlt's row normaliser (same tables, slower).
    arrow_tables: bool = True
    # More document types, or other paths for built-in ones: [{table, path, shape, request_types}] (docs/tables.md).
    document_types: list[dict[str, str]] | None = None
    # Alerts (docs/operations.md): a webhook URL (a Slack incoming webhook's is a secret: secrets.toml),
    # the freshness bound in hours (none: not checked) and the refresh-token warning in days.
    alert_webhook_url: TSecretStrValue | None = None
    alert_max_age_hours: float | None = None
    alert_refresh_token_days: float = 7.0
    # Deletions and changes the cursor misses (docs/loading.md): a company's lists are
    # read whole when its last sweep is older than this (0: only with `run --reconcile`); documents
    # found gone get `deleted_at`, or are removed with their child rows when hard_deletes is true.
    reconcile_every_hours: float = 24.0
    hard_deletes: bool = False
    # Keep every version seen in request_versions (docs/tables.md); false: the latest only.
    keep_history: bool = True
    # Seconds a warehouse that went away (a restart, a failover, a dropped connection, a lock
    # timeout) is retried for before a run gives up with exit 5; 0: not retried.
    warehouse_retry_seconds: float = 180.0
    # `approvalmax listen`: the last part of the webhook URL, /webhooks/approvalmax/<secret> (a secret).
    webhook_secret: TSecretStrValue | None = None
    # The secret before the last change, accepted too while ApprovalMax is moved to the new one.
    webhook_previous_secret: TSecretStrValue | None = None


def env_name(field_path: str) -> str:
    """The environment variable for a dotted field path, e.g. `credentials.client_id`."""
    return ENV_PREFIX + field_path.replace(".", "__").upper()


def load_settings() -> ApprovalMaxSettings:
    """Resolve settings now; a missing or bad value becomes one ConfigError naming the key."""
    try:
        settings = resolve_configuration(ApprovalMaxSettings(), sections=SECTIONS)
    except ConfigFieldMissingException as exc:
        raise ConfigError(_missing_message(exc)) from exc
    except TomlProviderReadException as exc:
        detail = " ".join(str(exc).split("\n")[1:]).strip() or type(exc).__name__
        raise ConfigError(
            f"cannot read {exc.file_name} in .dlt/ (left unchanged): {detail}; fix the TOML syntax"
        ) from exc
    except ConfigurationException as exc:
        first = first_line(exc)
        raise ConfigError(f"invalid configuration: {first}") from exc
    validate(settings)
    return settings


def validate(settings: ApprovalMaxSettings) -> None:
    """Checks dlt cannot make: ranges and URL shapes."""
    for name in ("api_base_url", "identity_base_url"):
        value = getattr(settings, name)
        if not value.startswith(("http://", "https://")):
            raise ConfigError(f"{env_name(name)} must be an http(s) URL, got {value!r}")
    if settings.lookback_minutes < 0:
        raise ConfigError(f"{env_name('lookback_minutes')} must be 0 or more")
    if not 1 <= settings.concurrency <= 64:
        raise ConfigError(f"{env_name('concurrency')} must be between 1 and 64")
    if not 1 <= settings.max_concurrency <= 256:
        raise ConfigError(f"{env_name('max_concurrency')} must be between 1 and 256")
    if settings.rate_limit_per_minute < 0:
        raise ConfigError(f"{env_name('rate_limit_per_minute')} must be 0 (off) or more")
    if settings.max_attempts < 1:
        raise ConfigError(f"{env_name('max_attempts')} must be 1 or more")
    if settings.warehouse_retry_seconds < 0:
        raise ConfigError(f"{env_name('warehouse_retry_seconds')} must be 0 (no retries) or more")
    if settings.reconcile_every_hours < 0:
        raise ConfigError(f"{env_name('reconcile_every_hours')} must be 0 (only with --reconcile) or more")


def _missing_message(exc: ConfigFieldMissingException) -> str:
    names = ", ".join(env_name(path) for path in missing_fields(exc.traces)) or "a required setting"
    return (
        f"missing setting {names}: set it in the environment or under [sources.approvalmax] "
        "in .dlt/secrets.toml (see .dlt/secrets.toml.example)"
    )


def missing_fields(traces: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of the missing fields, descending into nested configurations."""
    paths: list[str] = []
    for name, field_traces in traces.items():
        nested = [t for t in field_traces if isinstance(t, LookupTraces)]
        if nested:
            for trace in nested:
                paths.extend(missing_fields(trace.traces, f"{prefix}{name}."))
        else:
            paths.append(prefix + name)
    return paths


def document_types(settings: ApprovalMaxSettings) -> tuple[DocumentType, ...]:
    """The built-in document types, with the configured ones added (or replacing a built-in's path)."""
    return merge_document_types(settings.document_types or ())


def merge_document_types(configured: Sequence[Mapping[str, Any]]) -> tuple[DocumentType, ...]:
    types = {doc.resource: doc for doc in DOCUMENT_TYPES}
    key = env_name("document_types")
    for number, entry in enumerate(configured, start=1):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{key} entry {number} is not a table: give table, path and shape")
        table, path = str(entry.get("table") or ""), str(entry.get("path") or "").strip("/")
        shape = str(entry.get("shape") or "accounting")
        request_types = entry.get("request_types", ())
        if isinstance(request_types, str):
            request_types = (request_types,)
        if not isinstance(request_types, Sequence) or not all(isinstance(r, str) and r for r in request_types):
            raise ConfigError(
                f'{key} entry {number}: request_types must be a list of webhook RequestType names, e.g. ["QBooksBill"]'
            )
        if not _TABLE_NAME.match(table) or "__" in table or table in (RESOURCE_NAMES[0], RESOURCE_NAMES[1]):
            raise ConfigError(
                f"{key} entry {number}: table {table!r} must be snake_case (a-z, 0-9, single _) and not "
                "companies or user_profiles"
            )
        if not _PATH.match(path) or path.startswith("api/"):
            raise ConfigError(
                f"{key} entry {number}: path {path!r} must be the part after /api/v1/companies/<id>/, e.g. qbooks/bills"
            )
        if shape not in SHAPES:
            raise ConfigError(f"{key} entry {number}: shape {shape!r} must be accounting or standalone")
        unknown = sorted(set(entry) - {"table", "path", "shape", "request_types"})
        if unknown:
            raise ConfigError(
                f"{key} entry {number}: unknown key(s) {', '.join(unknown)}; use table, path, shape and request_types"
            )
        columns, children = SHAPES[shape]
        builtin = types.get(table)
        if builtin is not None and "shape" not in entry:
            columns, children = builtin.columns, builtin.children
        named = tuple(request_types) or (builtin.request_types if builtin is not None else ())
        types[table] = DocumentType(table, path, columns, children, named)
    paths = [doc.path for doc in types.values()]
    repeated = sorted({path for path in paths if paths.count(path) > 1})
    if repeated:
        raise ConfigError(f"{key}: path {', '.join(repeated)} is configured for two tables; give each path one table")
    names = [name for doc in types.values() for name in doc.request_types]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ConfigError(f"{key}: request type {', '.join(twice)} is named by two tables; give each one table")
    return tuple(types.values())
