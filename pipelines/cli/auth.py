"""`approvalmax auth`: log in, import a refresh token, show the token status, make and rotate the
token store's key. Never prints a token; `new-key` prints only the key it makes."""

from __future__ import annotations

import sys
import webbrowser
from datetime import timedelta
from typing import Annotated, Any

import typer

from approvalmax_pipeline.pipelines.cli.common import err, handle_errors, out
from approvalmax_pipeline.sources.clock import SYSTEM_CLOCK

auth_app = typer.Typer(
    help="Authorise the connection, inspect the stored tokens, and manage the key that encrypts them.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _say_if_unencrypted(settings: Any) -> None:
    """Once, where tokens are first stored: the store keeps them in plain text without a key."""
    from approvalmax_pipeline.sources.approvalmax.config import env_name

    if not settings.token_key:
        out.print(
            f"note: tokens are stored unencrypted; set {env_name('token_key')} to a key from "
            "`approvalmax auth new-key` to encrypt them",
            highlight=False,
            soft_wrap=True,
        )


@auth_app.command()
@handle_errors
def login(
    redirect_uri: Annotated[
        str | None, typer.Option(help="Redirect URI registered for the app (default: the redirect_uri setting).")
    ] = None,
    scopes: Annotated[str | None, typer.Option(help="Scopes (default: the scopes setting).")] = None,
    paste: Annotated[
        bool, typer.Option("--paste", help="Headless: paste the URL the browser ends on instead of listening.")
    ] = False,
    browser: Annotated[bool, typer.Option("--browser/--no-browser", help="Open the URL in a browser.")] = True,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the browser redirect.")] = 300.0,
) -> None:
    """Run the authorization-code flow and store the tokens it grants."""
    from approvalmax_pipeline.pipelines.cli.common import current_settings
    from approvalmax_pipeline.sources.approvalmax.connector import open_tokens
    from approvalmax_pipeline.sources.approvalmax.settings import AUTHORIZE_PATH
    from approvalmax_pipeline.sources.oauth_tokens.authorization_code import (
        code_from_redirect,
        is_loopback,
        new_request,
        wait_for_redirect,
    )

    settings = current_settings()
    uri = redirect_uri or settings.redirect_uri
    request = new_request(
        settings.identity_base_url.rstrip("/") + AUTHORIZE_PATH,
        settings.credentials.client_id,
        uri,
        scopes or settings.scopes,
    )
    tokens = open_tokens(settings)
    err.print("Open this URL, sign in to ApprovalMax and choose the organisations to share:", highlight=False)
    err.print(request.url, highlight=False, markup=False, soft_wrap=True)
    if paste or not is_loopback(uri):
        err.print(
            f"Your browser then ends on {uri}?code=... (the page need not load). "
            "Copy that whole URL from the address bar and paste it here:",
            highlight=False,
            soft_wrap=True,
        )
        redirected = sys.stdin.readline().strip()
    else:
        if browser:
            webbrowser.open(request.url)
        err.print(f"Waiting up to {timeout:.0f} s for the redirect to {uri} ...", highlight=False)
        redirected = wait_for_redirect(uri, timeout)
    record = tokens.exchange_code(code_from_redirect(redirected, request.state), uri)
    out.print(
        f"logged in: connection {record.connection_id or 'unknown'}; tokens saved to {tokens.store.location}",
        highlight=False,
        soft_wrap=True,
    )
    _say_if_unencrypted(settings)


@auth_app.command("import")
@handle_errors
def import_token() -> None:
    """Seed the store from an existing refresh token, read from standard input (never an argument)."""
    from approvalmax_pipeline.pipelines.cli.common import current_settings
    from approvalmax_pipeline.sources.approvalmax.connector import open_tokens

    settings = current_settings()
    interactive = sys.stdin.isatty()
    raw = typer.prompt("refresh token", hide_input=True) if interactive else sys.stdin.readline()
    refresh_token = str(raw).strip()
    if not refresh_token:
        from approvalmax_pipeline.sources.approvalmax.errors import ConfigError

        raise ConfigError("no refresh token on standard input: pipe it in, e.g. `approvalmax auth import < file`")
    tokens = open_tokens(settings)
    record = tokens.import_refresh_token(refresh_token)
    out.print(
        f"imported and verified (one refresh made): connection {record.connection_id or 'unknown'}; "
        f"tokens saved to {tokens.store.location}",
        highlight=False,
        soft_wrap=True,
    )
    _say_if_unencrypted(settings)


@auth_app.command()
@handle_errors
def status() -> None:
    """Connection, scopes, token expiry and refresh-token age; exit 3 when a login is needed."""
    from approvalmax_pipeline.pipelines.cli.common import current_settings
    from approvalmax_pipeline.pipelines.errors import EXIT_REAUTHORIZE
    from approvalmax_pipeline.pipelines.operations.refresh_deadline import refresh_deadlines
    from approvalmax_pipeline.sources.approvalmax.config import env_name
    from approvalmax_pipeline.sources.approvalmax.connector import settings_store
    from approvalmax_pipeline.sources.oauth_tokens import parse_keys

    settings = current_settings()
    store = settings_store(settings)
    with store.lock():
        record = store.load()
    out.print(f"token store: {store.location}", highlight=False)
    keys = len(parse_keys(settings.token_key))
    if keys:
        out.print(f"encryption: Fernet, under the newest of {keys} key(s) in {env_name('token_key')}", highlight=False)
    else:
        out.print(f"encryption: none, tokens are stored in plain text (set {env_name('token_key')})", highlight=False)
    if record is None or not record.refresh_token:
        if settings.credentials.refresh_token:
            out.print("no tokens stored yet: the next run starts from the configured refresh token")
            return
        out.print("no tokens stored and none configured: run `approvalmax auth login`")
        raise typer.Exit(EXIT_REAUTHORIZE)
    now = SYSTEM_CLOCK.now()
    out.print(f"connection: {record.connection_id or 'unknown'}", highlight=False)
    out.print(f"scopes: {record.scope or 'unknown'}", highlight=False)
    if record.access_token_expires_at is None:
        out.print("access token: none stored (the next run refreshes)")
    else:
        left = record.access_token_expires_at - now
        state = f"valid for {_span(left)}" if left > timedelta(0) else "expired (the next run refreshes)"
        out.print(f"access token: expires {record.access_token_expires_at:%Y-%m-%d %H:%M:%S} UTC, {state}")
    if record.refused_at is not None:
        err.print(
            f"error: the token endpoint refused this token family at {record.refused_at:%Y-%m-%d %H:%M} UTC "
            f"({record.refused_reason}): run `approvalmax auth login`",
            style="red",
            markup=False,
        )
        raise typer.Exit(EXIT_REAUTHORIZE)
    obtained = record.refresh_token_obtained_at or record.authorized_at
    if obtained is None:
        out.print("refresh token: obtained at an unknown time")
        return
    out.print(
        f"refresh token: obtained {obtained:%Y-%m-%d %H:%M} UTC ({_span(now - obtained)} ago); "
        f"refreshed {record.refresh_count} time(s)"
    )
    deadlines = refresh_deadlines(record)
    if deadlines.sliding is not None:
        out.print(f"  if the 30 days slide with each refresh: works until {deadlines.sliding:%Y-%m-%d %H:%M} UTC")
    if record.sliding_seen_at is not None:
        out.print(
            f"  the 30 days do slide: this family refreshed on {record.sliding_seen_at:%Y-%m-%d}, "
            "more than 30 days after consent"
        )
    elif deadlines.absolute is not None:
        out.print(
            f"  if they count from consent ({record.authorized_at:%Y-%m-%d %H:%M} UTC): works until "
            f"{deadlines.absolute:%Y-%m-%d %H:%M} UTC (not yet known which; alerts use the earlier)"
        )
    earliest = deadlines.earliest
    if earliest is None:
        return
    days_left = (earliest - now).total_seconds() / 86_400
    out.print(f"  about {max(days_left, 0):.1f} days left by the earlier of those")
    if days_left <= 0:
        err.print("error: the refresh token is past its 30 days: run `approvalmax auth login`", style="red")
        raise typer.Exit(EXIT_REAUTHORIZE)
    if days_left < settings.alert_refresh_token_days:  # the same bound as the alert
        err.print(
            f"warning: the refresh token may stop working in {days_left:.1f} days; a run renews a sliding one, "
            "but only `approvalmax auth login` renews one counted from consent",
            style="yellow",
        )


@auth_app.command("new-key")
@handle_errors
def new_key_command() -> None:
    """Print a fresh random key for token_key on stdout (how to use it goes to stderr)."""
    from approvalmax_pipeline.sources.approvalmax.config import env_name
    from approvalmax_pipeline.sources.oauth_tokens import new_key

    setting = env_name("token_key")
    err.print(
        f"A new key for {setting}. First key: set {setting} to it. Rotating: put it first and keep the "
        "old key(s) after it, comma-separated, then run `approvalmax auth rotate-key`. "
        "Keep it where you keep the client secret: without it the stored tokens cannot be read.",
        highlight=False,
        soft_wrap=True,
    )
    out.print(new_key(), highlight=False, markup=False, soft_wrap=True)


@auth_app.command("rotate-key")
@handle_errors
def rotate_key() -> None:
    """Re-encrypt the token store under the newest key in token_key (a plain-text store gets encrypted)."""
    from approvalmax_pipeline.pipelines.cli.common import current_settings
    from approvalmax_pipeline.sources.approvalmax.config import env_name
    from approvalmax_pipeline.sources.approvalmax.connector import settings_store
    from approvalmax_pipeline.sources.approvalmax.errors import ConfigError
    from approvalmax_pipeline.sources.oauth_tokens import parse_keys
    from approvalmax_pipeline.sources.oauth_tokens.store import rewrite

    settings = current_settings()
    keys = len(parse_keys(settings.token_key))
    if not keys:
        raise ConfigError(
            f"{env_name('token_key')} is not set: set it to a key from `approvalmax auth new-key` "
            "(the newest first), then run `approvalmax auth rotate-key`"
        )
    store = settings_store(settings)
    if rewrite(store) is None:
        out.print(f"token store {store.location} holds no tokens: nothing to re-encrypt", highlight=False)
        return
    older = "; the older key(s) can now be removed from it" if keys > 1 else ""
    out.print(
        f"token store {store.location} re-encrypted under the newest of {keys} key(s) in "
        f"{env_name('token_key')}{older}",
        highlight=False,
        soft_wrap=True,
    )


def _span(delta: timedelta) -> str:
    seconds = int(abs(delta.total_seconds()))
    if seconds >= 86_400:
        return f"{seconds // 86_400} d {seconds % 86_400 // 3600} h"
    if seconds >= 3600:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 60} min"
