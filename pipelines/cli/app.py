"""The `approvalmax` command: thin Typer commands; the only place that prints or picks exit codes."""

from __future__ import annotations

import errno
import gc
import logging
import os
import secrets
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from approvalmax_pipeline.pipelines.cli.auth import auth_app
from approvalmax_pipeline.pipelines.cli.common import DEBUG, JsonOption, current_settings, err, handle_errors, out
from approvalmax_pipeline.pipelines.errors import EXIT_FAILED, EXIT_OK, interrupted
from approvalmax_pipeline.pipelines.warehouse.target import DATASET_NAME, PIPELINE_NAME

app = typer.Typer(
    name="approvalmax",
    help="Load ApprovalMax companies, documents and approval histories into a warehouse with dlt.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    # click's plain help and usage errors: one line for a mistyped option instead of a box, and
    # `--help` without importing rich's markdown and traceback renderers (a third of its start-up)
    rich_markup_mode=None,
)
app.add_typer(auth_app, name="auth")


@app.callback()
def options(
    log_level: Annotated[
        str, typer.Option(help="Log level on stderr: debug, info, warning, error.", envvar="APPROVALMAX_LOG_LEVEL")
    ] = "warning",
    debug: Annotated[bool, typer.Option(help="Show tracebacks of unexpected errors.")] = False,
    log_third_party: Annotated[
        bool,
        typer.Option(
            "--log-third-party",
            envvar="APPROVALMAX_LOG_THIRD_PARTY",
            help="Also log HTTP connection and file-lock internals (httpcore, httpx, filelock, ...).",
        ),
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=print_version)
    ] = False,
) -> None:
    DEBUG["on"] = debug
    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        err.print(f"error: --log-level {log_level!r} is not one of debug, info, warning, error", style="red")
        raise typer.Exit(2)
    log_to_stderr(level, log_third_party)
    # dlt warns about every all-null column; keep its log at error unless asked for more. Its info
    # records (a line per normaliser, job and pool: hundreds a run) come with --log-level debug; at
    # info the run log is ours (phases, companies, counts, retries) and dlt's warnings.
    os.environ.setdefault("RUNTIME__LOG_LEVEL", DLT_LEVELS.get(level, "DEBUG"))
    # dlt's records in our layout, so a log has one format (dlt keeps a handler of its own)
    os.environ.setdefault("RUNTIME__LOG_FORMAT", DLT_LOG_FORMAT)
    # dlt would catch Ctrl-C during normalise and load, finish its running jobs and return as if all
    # went well; a KeyboardInterrupt instead stops the run there, exit 130, and the next run redoes
    # what had not completed (nothing counts before dlt commits a load with its state).
    os.environ.setdefault("RUNTIME__INTERCEPT_SIGNALS", "false")
    # A pipeline of financial data sends nothing anywhere unless asked: dlt's anonymous usage
    # telemetry is off (RUNTIME__DLTHUB_TELEMETRY=true, or [runtime] in .dlt/config.toml, turns it on).
    telemetry_off_unless_asked()


def telemetry_off_unless_asked() -> None:
    """Decided before dlt makes its run context, which starts the telemetry with what it finds then:
    so the project's .dlt/config.toml is read here, as dlt would read it (DLT_PROJECT_DIR, else ./)."""
    if "RUNTIME__DLTHUB_TELEMETRY" in os.environ:
        return
    config = Path(os.environ.get("DLT_PROJECT_DIR", ".")) / ".dlt" / "config.toml"
    try:
        asked = tomllib.loads(config.read_text()).get("runtime", {}).get("dlthub_telemetry")
    except (OSError, tomllib.TOMLDecodeError):
        asked = None  # an unreadable file is reported by the command that reads it
    if asked is None:
        os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"


def print_version(value: bool) -> None:
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    def installed(package: str) -> str:
        try:
            return version(package)
        except PackageNotFoundError:
            return "unknown (not installed)"

    # from the installed metadata: importing dlt for its __version__ would cost most of a second
    ours, dlt_version = installed("approvalmax-pipeline"), installed("dlt")
    out.print(f"approvalmax-pipeline {ours} (dlt {dlt_version}, Python {sys.version.split()[0]})", markup=False)
    raise typer.Exit(0)


# dlt's own log level for each of ours (see options()).
DLT_LEVELS = {logging.ERROR: "ERROR", logging.WARNING: "ERROR", logging.INFO: "WARNING"}
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
DLT_LOG_FORMAT = "{asctime} {levelname} {name}: {message}"  # the same, in dlt's `{` style
# Libraries whose records say how connections and locks work, not what the run does.
THIRD_PARTY_LOGGERS = ("httpcore", "httpx", "filelock", "urllib3", "asyncio", "sqlglot", "fsspec", "hpack")
# Libraries whose debug records hold request and response bodies, secrets' values among them (boto3 reading
# the AWS token store or dlt's AWS provider): never below INFO, even with --log-third-party.
SECRET_BEARING_LOGGERS = ("botocore", "boto3")


def log_to_stderr(level: int, third_party: bool = False) -> None:
    """One handler on the current stderr, replacing the one an earlier command in this process set;
    third-party records only when asked (they are most of a debug log otherwise)."""
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if third_party else max(level, logging.WARNING))
    for name in SECRET_BEARING_LOGGERS:
        logging.getLogger(name).setLevel(max(level, logging.INFO if third_party else logging.WARNING))
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "approvalmax", False)]:
        root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.approvalmax = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    dlt_logger = logging.getLogger("dlt")  # dlt logs to a handler of its own, named after its run context
    for old in [f for f in dlt_logger.filters if isinstance(f, OneLineRecords)]:
        dlt_logger.removeFilter(old)
    dlt_logger.addFilter(OneLineRecords())


class OneLineRecords(logging.Filter):
    """dlt's records without tracebacks unless --debug: a warehouse fault it logs (say `Transient
    exception in job ...`, once per job and attempt) is left out, because the retry and the one
    line naming it say it; any other record keeps its text and its exception's first line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if DEBUG["on"] or not record.exc_info or record.exc_info[1] is None:
            return True
        from approvalmax_pipeline.pipelines.warehouse.faults import classify
        from approvalmax_pipeline.sources.errors import first_line

        exc = record.exc_info[1]
        if classify(exc) is not None or interrupted(exc):
            return False
        record.msg, record.args = f"{record.getMessage()}: {first_line(exc)}", ()
        record.exc_info, record.exc_text = None, None
        return True


# Off a terminal, `--progress` writes a status line this often instead of a live one.
PROGRESS_LOG_SECONDS = 5.0


@contextmanager
def progress_display(enabled: bool, monitor: Any) -> Iterator[None]:
    """A live status line on a terminal's stderr, or a line every few seconds into a log."""
    if not enabled:
        yield
        return
    started = time.monotonic()

    def line() -> str:
        stats, report = monitor.stats, monitor.report
        requests = stats.requests if stats else 0
        retries = stats.retries if stats else 0
        documents = report.documents if report else 0
        return (
            f"{monitor.phase} · {requests} requests · {documents} rows · {retries} retries · "
            f"{time.monotonic() - started:.0f} s"
        )

    if not err.is_terminal:
        with every(PROGRESS_LOG_SECONDS, lambda: err.print(f"progress: {line()}", markup=False)):
            yield
        return
    with err.status(line(), spinner="dots") as status, every(0.25, lambda: status.update(line())):
        yield


@contextmanager
def every(seconds: float, action: Any) -> Iterator[None]:
    """Call `action` every `seconds` in a thread of its own while the block runs."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(seconds):
            action()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


DestinationOption = Annotated[
    str,
    typer.Option(
        "--destination",
        "-d",
        help="dlt destination: duckdb, postgres, bigquery or snowflake.",
        envvar="APPROVALMAX_DESTINATION",
    ),
]
DatasetOption = Annotated[str, typer.Option(help="Dataset (schema) in the destination.")]
WaitOption = Annotated[
    float,
    typer.Option(
        min=0,
        envvar="APPROVALMAX_WAIT",
        help="Seconds to wait for another run of this pipeline (else exit 4); a DuckDB file in use is waited "
        "for this long or warehouse_retry_seconds, whichever is longer.",
    ),
]
PipelineOption = Annotated[str, typer.Option("--pipeline-name", help="dlt pipeline name (working folder and state).")]
RecordOption = Annotated[
    Path | None,
    typer.Option(
        "--record",
        help="Save the API's responses into this folder, tokens left out and personal text pseudonymised "
        "(replay with `approvalmax sandbox --replay DIR`).",
    ),
]


@app.command()
@handle_errors
def run(
    destination: DestinationOption = "duckdb",
    dataset: DatasetOption = DATASET_NAME,
    company: Annotated[
        list[str] | None, typer.Option("--company", "-c", help="Only this company id (repeatable).")
    ] = None,
    resource: Annotated[
        list[str] | None, typer.Option("--resource", "-r", help="Only this resource/table (repeatable).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Backfill documents modified at or after this date; cursors untouched.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Backfill end (exclusive); needs --since.")] = None,
    reconcile: Annotated[
        bool,
        typer.Option(
            "--reconcile",
            help=(
                "Read every company's lists whole now: load what the cursor missed, mark deleted documents, "
                "reload companies and user profiles."
            ),
        ),
    ] = False,
    pipeline_name: PipelineOption = PIPELINE_NAME,
    progress: Annotated[
        bool | None, typer.Option("--progress/--no-progress", help="Live status on stderr (default: on a terminal).")
    ] = None,
    wait: WaitOption = 0.0,
    record: RecordOption = None,
    json_output: JsonOption = False,
) -> None:
    """Load every company's documents; incremental unless --since is given."""
    from approvalmax_pipeline.pipelines.cli.summary import run_summary
    from approvalmax_pipeline.pipelines.options import parse_when
    from approvalmax_pipeline.pipelines.run import RunMonitor, RunRequest, run_pipeline
    from approvalmax_pipeline.pipelines.warehouse.factory import check_destination
    from approvalmax_pipeline.pipelines.warehouse.target import Target

    leave_imports_out_of_collections()
    check_destination(destination)  # a wrong name or a missing extra, before anything else
    request = RunRequest(
        target=Target(destination, dataset, pipeline_name, wait=wait),
        companies=tuple(company or ()),
        resources=tuple(resource or ()),
        since=parse_when("--since", since),
        until=parse_when("--until", until),
        record_to=record,
        reconcile=reconcile,
    )
    settings = current_settings()
    monitor = RunMonitor()
    try:
        with progress_display(err.is_terminal if progress is None else progress, monitor):
            result = run_pipeline(settings, request, monitor)
    except Exception as exc:
        from approvalmax_pipeline.pipelines.operations.alerts import notify_after_error

        notify_after_error(settings, pipeline_name, dataset, exc)
        raise
    from approvalmax_pipeline.pipelines.operations.alerts import notify_after_run

    notify_after_run(settings, destination, dataset, result)
    code = EXIT_FAILED if result.failed else EXIT_OK
    if json_output:
        from approvalmax_pipeline.pipelines.cli.json_output import emit, run_document

        emit(run_document(result, code))
    else:
        out.print(run_summary(result))
    raise typer.Exit(code)


@app.command()
@handle_errors
def companies(json_output: JsonOption = False) -> None:
    """List the organisations the connection can read."""
    from approvalmax_pipeline.pipelines.cli.summary import companies_table
    from approvalmax_pipeline.sources.approvalmax.companies import companies_of
    from approvalmax_pipeline.sources.approvalmax.connector import Connector

    with Connector(current_settings()) as connector:
        found = companies_of(connector.client.companies())
    if json_output:
        from approvalmax_pipeline.pipelines.cli.json_output import companies_document, emit

        emit(companies_document(found))
    else:
        out.print(companies_table(found))


@app.command()
@handle_errors
def ping(
    check_refresh: Annotated[
        bool,
        typer.Option(
            "--check-refresh",
            help="Refresh once (storing the rotated token, as any refresh does) to prove the client id, "
            "secret and refresh token; without it a cached access token is used.",
        ),
    ] = False,
) -> None:
    """Check that the API answers and the credentials work."""
    from approvalmax_pipeline.sources.approvalmax.connector import Connector

    settings = current_settings()
    with Connector(settings) as connector:
        if check_refresh:
            connector.tokens.refresh_now()
            out.print("token refresh: the client id, secret and refresh token were accepted; the new token is stored")
        client = connector.client
        started = time.monotonic()
        client.ping()
        elapsed = (time.monotonic() - started) * 1000
        count = len(client.companies())
    out.print(f"{settings.api_base_url} answered in {elapsed:.0f} ms; the token can read {count} organisation(s)")


@app.command()
@handle_errors
def doctor(
    companies: Annotated[int, typer.Option(min=1, max=10, help="Organisations to sample.")] = 2,
    record: RecordOption = None,
    json_output: JsonOption = False,
) -> None:
    """Check each assumption about the API against the configured one (bounded requests)."""
    from approvalmax_pipeline.pipelines.cli.summary import doctor_table
    from approvalmax_pipeline.pipelines.operations.doctor import request_budget, run_doctor
    from approvalmax_pipeline.sources.approvalmax.config import document_types

    settings = current_settings()
    types = document_types(settings)
    report = run_doctor(settings, sample=companies, record_to=record)
    budget = request_budget(companies, len(types))
    code = EXIT_FAILED if report.differs else EXIT_OK
    if json_output:
        from approvalmax_pipeline.pipelines.cli.json_output import doctor_document, emit

        emit(doctor_document(report.checks, report.requests, budget, code))
        raise typer.Exit(code)
    out.print(doctor_table(report.checks))
    out.print(f"{report.requests} API requests (at most {budget}) and one token refresh", highlight=False)
    raise typer.Exit(code)


@app.command()
@handle_errors
def state(
    destination: DestinationOption = "duckdb",
    dataset: DatasetOption = DATASET_NAME,
    pipeline_name: PipelineOption = PIPELINE_NAME,
    wait: WaitOption = 0.0,
    json_output: JsonOption = False,
) -> None:
    """Show the incremental cursor of every company and resource, as stored in the warehouse."""
    from approvalmax_pipeline.pipelines.cli.summary import cursor_table
    from approvalmax_pipeline.pipelines.warehouse.state import read_cursors
    from approvalmax_pipeline.pipelines.warehouse.target import Target

    cursors = read_cursors(Target(destination, dataset, pipeline_name, wait=wait))
    if json_output:
        from approvalmax_pipeline.pipelines.cli.json_output import emit, state_document

        emit(state_document(pipeline_name, cursors))
        return
    if not cursors:
        out.print(f"no cursors yet for pipeline {pipeline_name}: the next run is a full load")
        return
    out.print(cursor_table(cursors))


@app.command()
@handle_errors
def status(
    destination: DestinationOption = "duckdb",
    dataset: DatasetOption = DATASET_NAME,
    max_age: Annotated[
        float,
        typer.Option(
            "--max-age",
            min=0,
            envvar="APPROVALMAX_MAX_AGE_HOURS",
            help="Hours after which a company's resource counts as stale (exit 1).",
        ),
    ] = 24.0,
    json_output: JsonOption = False,
) -> None:
    """Show each company's freshness and the failures since, from run_history; exit 1 if stale."""
    from approvalmax_pipeline.pipelines.operations.status import age_text, read_status
    from approvalmax_pipeline.pipelines.warehouse.target import Target

    freshness, failures = read_status(Target(destination, dataset), max_age * 3600)
    stale = [f for f in freshness if f.stale]
    code = EXIT_FAILED if stale or not freshness else EXIT_OK
    if json_output:
        from approvalmax_pipeline.pipelines.cli.json_output import emit, status_document

        emit(status_document(freshness, failures, max_age, code))
        raise typer.Exit(code)
    for f in freshness:
        mark = "STALE" if f.stale else "ok"
        when = (
            f"last loaded {f.last_success_at.isoformat()} ({age_text(f.age_seconds)} ago)"
            if f.last_success_at
            else "never loaded"
        )
        out.print(f"{mark} company {f.company_id} · {f.resource} · {when}", markup=False)
    for failure in failures:
        out.print(
            f"FAILED company {failure.company_id or '-'} · {failure.resource or '-'} · "
            f"{failure.finished_at.isoformat()} · {failure.error}",
            markup=False,
        )
    out.print(
        f"{len(freshness)} company resources, {len(stale)} stale (older than {max_age:g} h), "
        f"{len(failures)} failure(s) since their last load",
        markup=False,
    )
    raise typer.Exit(code)


@app.command()
@handle_errors
def demo(
    duckdb_file: Annotated[Path, typer.Option(help="DuckDB file to write (replaced on every demo).")] = Path(
        "approvalmax_demo.duckdb"
    ),
    workdir: Annotated[Path, typer.Option(help="Demo working folder (replaced on every demo).")] = Path(
        ".approvalmax-demo"
    ),
    companies: Annotated[int, typer.Option(min=1, max=50, help="Sandbox companies.")] = 4,
    documents: Annotated[int, typer.Option(min=10, max=100_000, help="Sandbox documents per company.")] = 400,
) -> None:
    """Start the sandbox, load it into a local DuckDB file, change it, load again, show the tables."""
    from approvalmax_pipeline.pipelines.cli.summary import row_count_table, run_summary
    from approvalmax_pipeline.pipelines.operations.demo import DemoPaths, run_demo

    paths = DemoPaths(workdir=workdir.resolve(), duckdb_file=duckdb_file.resolve())

    def on_step(step: str, value: Any) -> None:
        if step == "first":
            out.section("1. full load from the sandbox")
            out.print(run_summary(value))
        elif step == "changes":
            out.section("2. the sandbox changes documents")
            out.print(f"changed {len(set(value['modified']))} and added {len(value['added'])} documents")
        elif step == "second":
            out.section("3. incremental load: only what changed")
            out.print(run_summary(value))
        else:
            out.section("4. near real time: a change arrives by webhook (`approvalmax listen`)")
            seconds = ", ".join(f"{s:.1f} s" for s in value["seconds"]) or "none"
            out.print(f"{value['events']} webhook events loaded; from receipt to warehouse commit: {seconds}")

    counts = run_demo(paths, companies, documents, on_step)
    out.section(f"5. what is in {paths.duckdb_file}")
    out.print(row_count_table(counts, f"tables in dataset {DATASET_NAME} ({len(counts)})"))
    python = os.path.relpath(sys.executable) if sys.executable.startswith(os.getcwd()) else sys.executable
    query = f"select request_status, count(*) from {DATASET_NAME}.xero_bills group by 1"
    out.print(
        f"query it: {python} -c \"import duckdb; print(duckdb.connect('{paths.duckdb_file}').sql('{query}'))\"",
        soft_wrap=True,
    )


@app.command()
@handle_errors
def listen(
    host: Annotated[str, typer.Option(help="Address to listen on (put a TLS reverse proxy in front).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0 picks a free one).")] = 8787,
    destination: DestinationOption = "duckdb",
    dataset: DatasetOption = DATASET_NAME,
    pipeline_name: PipelineOption = PIPELINE_NAME,
    queue: Annotated[
        str,
        typer.Option(
            help="The durable event queue, kept across restarts: a SQLite file, or a postgresql:// URL that "
            "listener replicas behind a load balancer share."
        ),
    ] = ".approvalmax/webhooks.sqlite",
    batch_seconds: Annotated[float, typer.Option(min=0.1, help="Seconds between loads of queued events.")] = 2.0,
    max_rate: Annotated[float, typer.Option(min=1, help="Webhook calls per second accepted (429 beyond).")] = 50.0,
) -> None:
    """Load ApprovalMax's webhook events seconds after they happen, until SIGTERM or Ctrl-C."""
    from approvalmax_pipeline.pipelines.warehouse.factory import check_destination
    from approvalmax_pipeline.pipelines.warehouse.target import Target
    from approvalmax_pipeline.pipelines.webhooks.listen import ListenRequest, listen
    from approvalmax_pipeline.sources.approvalmax.errors import ConfigError

    leave_imports_out_of_collections()

    check_destination(destination)
    request = ListenRequest(
        host=host,
        port=port,
        target=Target(destination, dataset, pipeline_name),
        queue=queue,
        batch_seconds=batch_seconds,
        max_requests_per_second=max_rate,
    )

    def ready(url: str) -> None:
        err.print(f"listening on {url}/webhooks/approvalmax/<webhook_secret>; health: {url}/healthz", markup=False)

    try:
        status = listen(current_settings(), request, on_ready=ready)
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL):
            raise
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port or --host") from exc
    out.print(
        f"stopped: {status.batches} batches, {status.events} events, {status.documents} documents loaded, "
        f"{status.deleted} marked deleted; API calls: {status.list_pages} list pages, {status.reads_by_id} by id",
        markup=False,
    )


@app.command()
@handle_errors
def sandbox(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0 picks a free one).")] = 8900,
    companies: Annotated[int, typer.Option(min=1, help="Companies.")] = 4,
    documents: Annotated[int, typer.Option(min=1, help="Documents per company.")] = 400,
    seed: Annotated[int, typer.Option(help="Data seed: the same seed serves the same data.")] = 7,
    latency: Annotated[float, typer.Option(help="Seconds added to every API request.")] = 0.0,
    rate_limit: Annotated[
        int | None, typer.Option(min=1, help="Requests per company per --rate-window, then 429 with Retry-After.")
    ] = None,
    rate_window: Annotated[float, typer.Option(min=0.1, help="Seconds --rate-limit counts in.")] = 60.0,
    webhook_url: Annotated[
        str | None,
        typer.Option(
            help="Where changes made with POST /_sandbox/mutate are sent as ApprovalMax webhooks: a listener's "
            "address (http://127.0.0.1:8787), to which the printed webhook secret's path is added."
        ),
    ] = None,
    error_rate: Annotated[float, typer.Option(help="Share of API requests answered 503.")] = 0.0,
    disabled: Annotated[
        list[str] | None, typer.Option(help="Company id whose data endpoints answer 'disabled' (repeatable).")
    ] = None,
    replay: Annotated[
        Path | None,
        typer.Option(help="Serve the responses recorded with --record in this folder instead of synthetic data."),
    ] = None,
) -> None:
    """Run the bundled ApprovalMax-compatible server until Ctrl-C."""
    from approvalmax_pipeline.sandbox import SandboxKnobs, start_sandbox
    from approvalmax_pipeline.sandbox.replay import Replay
    from approvalmax_pipeline.sandbox.server import webhook_address
    from approvalmax_pipeline.sources.approvalmax.errors import ConfigError

    if webhook_url is not None and not webhook_url.startswith(("http://", "https://")):
        raise ConfigError(f"--webhook-url must be an http(s) URL, got {webhook_url!r}; e.g. http://127.0.0.1:8787")
    webhook_secret = secrets.token_urlsafe(24)
    knobs = SandboxKnobs(
        latency=latency,
        rate_limit_per_minute=rate_limit,
        rate_window_seconds=rate_window,
        webhook_url=webhook_address(webhook_url, webhook_secret) if webhook_url else "",
        error_rate=error_rate,
        disabled_companies=list(disabled or ()),
    )
    recording = None
    if replay is not None:
        try:
            recording = Replay.load(replay)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot replay {replay}: {exc}; give the folder `--record` wrote") from exc
    try:
        server = start_sandbox(
            port=port, seed=seed, companies=companies, documents_per_company=documents, knobs=knobs, replay=recording
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot serve on 127.0.0.1:{port}: {exc.strerror}; pick another --port (0 picks one)"
        ) from exc
    refresh_token = server.identity.issue_refresh_token()
    serving = f"the recording in {replay}" if replay is not None else f"{companies} companies"
    out.print(f"sandbox serving {serving} at {server.url} (identity and API); point the pipeline at it:")
    settings = [
        ("SOURCES__APPROVALMAX__API_BASE_URL", server.url),
        ("SOURCES__APPROVALMAX__IDENTITY_BASE_URL", server.url),
        ("SOURCES__APPROVALMAX__CREDENTIALS__CLIENT_ID", server.identity.client_id),
        ("SOURCES__APPROVALMAX__CREDENTIALS__CLIENT_SECRET", server.identity.client_secret),
        ("SOURCES__APPROVALMAX__CREDENTIALS__REFRESH_TOKEN", refresh_token),
        # absolute: a token store per folder would each start from the one refresh token printed here
        ("SOURCES__APPROVALMAX__TOKEN_STORE", os.path.abspath(".approvalmax/sandbox-tokens.json")),
    ]
    if rate_limit is not None:  # the pipeline paces itself to the same limit
        settings.append(("SOURCES__APPROVALMAX__RATE_LIMIT_PER_MINUTE", str(rate_limit)))
        settings.append(("SOURCES__APPROVALMAX__RATE_LIMIT_WINDOW_SECONDS", f"{rate_window:g}"))
    settings.append(("SOURCES__APPROVALMAX__WEBHOOK_SECRET", webhook_secret))  # the last line printed
    # These are the sandbox's own throwaway credentials, not secrets of any real account.
    for key, value in settings:
        out.print(f"export {key}={value}", highlight=False, soft_wrap=True)
    if knobs.webhook_url:
        out.print(
            f"changes made with POST {server.url}/_sandbox/mutate are sent to {webhook_url} as webhooks", markup=False
        )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


# Set by `main`, a process of one command: a caller of `app` in its own process (the tests' runner)
# keeps its heap as it is.
ONE_COMMAND_PROCESS = {"freeze": False}


def leave_imports_out_of_collections() -> None:
    """Freeze what the imports made (dlt, pyarrow, httpx: about a million objects): the collector's
    full passes then skip it. Over 1,000 organisations they took 1.4 s of a full load, 0.6 s after."""
    if ONE_COMMAND_PROCESS["freeze"]:
        gc.freeze()


def main() -> None:
    ONE_COMMAND_PROCESS["freeze"] = True
    try:
        app()
    finally:
        # At exit the interpreter runs full garbage collections over every object still alive: after
        # a run, 1,500 modules' worth, 0.35-0.45 s of every command. Frozen objects are skipped;
        # the process frees its memory anyway, and files and connections are closed by then.
        gc.freeze()
