"""The composition root: settings, clock, token store, tokens, client and sources are built here and nowhere else.

The CLI, the Airflow DAG, the demo, the doctor and the bench all start from `Connector`; the
layers below it (client, token layer, settings) never build one another.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from dlt.extract.source import DltSource

from ..clock import SYSTEM_CLOCK, Clock
from ..http_retry import RetryPolicy
from ..oauth_tokens import (
    BearerAuth,
    FileTokenStore,
    RotatingRefreshTokens,
    TokenEndpoint,
    TokenSealing,
    TokenStore,
    parse_keys,
)
from ..oauth_tokens.aws_store import INSTALL_HINT, AwsLocation, SecretsManagerTokenStore, is_aws_url
from ..oauth_tokens.postgres_store import PostgresTokenStore, is_postgres_url
from .client import ApprovalMaxClient
from .companies import Company, companies_of, select_companies
from .config import ApprovalMaxSettings, document_types, env_name, load_settings
from .cursors import Window
from .errors import ConfigError
from .extract_options import ExtractOptions
from .rate_budget import RateBudget, open_rate_budget
from .recording import Recorder
from .settings import REFRESH_GRACE_MINUTES, REFRESH_TOKEN_LIFETIME_DAYS, TOKEN_PATH, DocumentType
from .source import approvalmax_dlt_source, fetched_documents_source
from .state_layout import Positions

log = logging.getLogger(__name__)

REAUTHORIZE_HINT = (
    "run `approvalmax auth login` (or `approvalmax auth import` with a new refresh token) "
    f"or set {env_name('credentials.refresh_token')} to a new one"
)
REVOKED_HINT = (
    "Ask an ApprovalMax administrator to re-enable it on the Connections page, or create a new "
    "one with `approvalmax auth login`."
)


def open_token_store(location: str, key: str = "approvalmax", sealing: TokenSealing | None = None) -> TokenStore:
    """A store from the `token_store` setting: a PostgreSQL URL, an aws-secretsmanager:// URL, or else a
    file path. A malformed URL, or the AWS store without its extra, is a configuration error (exit 2)."""
    sealing = sealing or TokenSealing(setting=env_name("token_key"))
    if is_postgres_url(location):
        return PostgresTokenStore(location, key=key, sealing=sealing)
    if is_aws_url(location):
        try:
            AwsLocation.parse(location)
        except ValueError as exc:
            raise ConfigError(f"{env_name('token_store')}: {exc}") from None
        if importlib.util.find_spec("boto3") is None:
            raise ConfigError(INSTALL_HINT)
        return SecretsManagerTokenStore(location, sealing=sealing)
    if not location.strip():
        raise ConfigError(
            f"{env_name('token_store')} is empty: give a file path, a postgresql:// or an aws-secretsmanager:// URL"
        )
    return FileTokenStore(location, sealing=sealing)


def token_sealing(settings: ApprovalMaxSettings) -> TokenSealing:
    """How the store encrypts tokens: under the `token_key` setting's keys, newest first (none: plain text)."""
    return TokenSealing(parse_keys(settings.token_key), setting=env_name("token_key"))


def token_family(settings: ApprovalMaxSettings) -> str:
    """The key of the client id's token family (and of its shared rate budget) in a shared store."""
    return f"approvalmax:{settings.credentials.client_id}"


def shared_rate_budget(settings: ApprovalMaxSettings) -> RateBudget | None:
    """The client id's per-company budget, beside its tokens, which every process pacing it shares."""
    if settings.rate_limit_per_minute <= 0:
        return None
    try:
        return open_rate_budget(settings.token_store, token_family(settings))
    except ConfigError as exc:  # pacing is worth having, not worth stopping a run for
        log.warning("%s; pacing this process on its own", exc)
        return None


def settings_store(settings: ApprovalMaxSettings) -> TokenStore:
    """The configured store; one token family per client id (the key in a shared database)."""
    return open_token_store(settings.token_store, key=token_family(settings), sealing=token_sealing(settings))


def token_endpoint(settings: ApprovalMaxSettings) -> TokenEndpoint:
    # A refresh request that may have reached the server can be sent again: the old
    # refresh token stays valid for an hour after rotation.
    return TokenEndpoint(
        settings.identity_base_url.rstrip("/") + TOKEN_PATH,
        body="form",
        retry=RetryPolicy(max_attempts=settings.max_attempts),
        resend_is_safe=True,
        timeout=settings.request_timeout,
    )


def open_tokens(settings: ApprovalMaxSettings, clock: Clock = SYSTEM_CLOCK) -> RotatingRefreshTokens:
    credentials = settings.credentials
    return RotatingRefreshTokens(
        token_endpoint(settings),
        settings_store(settings),
        client_id=credentials.client_id,
        client_secret=credentials.client_secret,
        seed_refresh_token=credentials.refresh_token or None,
        skew=timedelta(seconds=settings.token_refresh_skew_seconds),
        grace=timedelta(minutes=REFRESH_GRACE_MINUTES),
        reauthorize_hint=REAUTHORIZE_HINT,
        family_lifetime=timedelta(days=REFRESH_TOKEN_LIFETIME_DAYS),
        clock=clock,
    )


def open_client(
    settings: ApprovalMaxSettings,
    tokens: RotatingRefreshTokens | None = None,
    record_to: Path | None = None,
    clock: Clock = SYSTEM_CLOCK,
) -> ApprovalMaxClient:
    """The API client with bearer auth from the token store; `record_to` keeps its responses
    (pseudonymised, see recording.py)."""
    return ApprovalMaxClient(
        settings.api_base_url,
        auth=BearerAuth(tokens or open_tokens(settings), revoked_hint=REVOKED_HINT),
        timeout=settings.request_timeout,
        retry=RetryPolicy(max_attempts=settings.max_attempts),
        concurrency=settings.concurrency,
        max_concurrency=settings.max_concurrency,
        rate_limit_per_minute=settings.rate_limit_per_minute,
        rate_limit_window_seconds=settings.rate_limit_window_seconds,
        rate_budget=shared_rate_budget(settings),
        on_response=Recorder(record_to) if record_to is not None else None,
        clock=clock,
    )


class Connector:
    """One connection to ApprovalMax for one run: its settings, tokens and client, and the sources
    built on them. Close it (or use it as a context manager) to close the client."""

    def __init__(
        self, settings: ApprovalMaxSettings | None = None, record_to: Path | None = None, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.settings = settings if settings is not None else load_settings()
        self.clock = clock
        self.document_types: tuple[DocumentType, ...] = document_types(self.settings)
        self.tokens = open_tokens(self.settings, clock)
        self.client = open_client(self.settings, self.tokens, record_to, clock)

    def __enter__(self) -> Connector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    def extract_options(
        self,
        window: Window | None = None,
        strict: bool = False,
        reconcile: bool = False,
        positions: Positions | None = None,
    ) -> ExtractOptions:
        """How this run reads, from the settings: the one place ExtractOptions are built."""
        every = self.settings.reconcile_every_hours
        return ExtractOptions(
            lookback=timedelta(minutes=self.settings.lookback_minutes),
            window=window,
            strict=strict,
            arrow=self.settings.arrow_tables,
            document_types=self.document_types,
            reconcile_every=timedelta(hours=every) if every > 0 else None,
            reconcile=reconcile,
            history=self.settings.keep_history,
            clock=self.clock,
            positions=positions,
        )

    def companies(self, wanted: Sequence[str] | None = None) -> list[Company]:
        """The companies a run loads: `wanted` (else the `company_ids` setting, else all listed)."""
        return select_companies(self.client.companies(), wanted or self.settings.company_ids)

    def source(self, companies: Sequence[Mapping[str, Any] | Company], options: ExtractOptions) -> DltSource:
        """A run's source: each company's documents modified since its cursor."""
        return approvalmax_dlt_source(self.client, companies_of(companies), options)

    def fetched_source(
        self, documents: Mapping[str, Mapping[str, Sequence[dict[str, Any]]]], options: ExtractOptions
    ) -> DltSource:
        """The listener's source: documents already read by id (resource -> company -> documents)."""
        return fetched_documents_source(documents, options)


def approvalmax_source(
    client: ApprovalMaxClient | None = None,
    companies: Sequence[Mapping[str, Any] | Company] | None = None,
    options: ExtractOptions | None = None,
    *,
    company_ids: Sequence[str] | None = None,
    settings: ApprovalMaxSettings | None = None,
) -> DltSource:
    """The source, as dlt's verified sources are used: `pipeline.run(approvalmax_source())`.

    With no arguments, settings, credentials and the token store come from dlt's configuration
    (`[sources.approvalmax]` in .dlt/, or SOURCES__APPROVALMAX__* variables) and every company
    (or `company_ids`) is read; a company that fails raises, so a script cannot miss it. The CLI
    builds its source through `Connector.source` instead.
    """
    if client is None:
        # one client for the source's life: dlt gives a source no close hook, so it closes when collected
        connector = Connector(settings)
        options = options or replace(connector.extract_options(), strict=True)
        return connector.source(connector.companies(company_ids), options)
    if companies is None or options is None:
        raise TypeError("approvalmax_source: pass client, companies and options together, or none of them")
    return approvalmax_dlt_source(client, companies_of(companies), options)
