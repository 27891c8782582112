"""Exit codes and the search for our own error inside dlt's wrappers."""

from __future__ import annotations

from collections.abc import Iterator

from approvalmax_pipeline.sources.approvalmax.errors import ApprovalMaxError, ConfigError
from approvalmax_pipeline.sources.oauth_tokens import ReauthorizationRequired, TokenError, TokenStoreUnusable

EXIT_OK = 0
EXIT_FAILED = 1  # the run failed, or some companies could not be loaded
EXIT_USAGE = 2  # bad option, bad or missing configuration
EXIT_REAUTHORIZE = 3  # a person must authorise the connection again
EXIT_BUSY = 4  # another run holds the pipeline, or another process the DuckDB file
EXIT_WAREHOUSE_UNAVAILABLE = 5  # the warehouse stayed unreachable for the whole retry window
EXIT_WAREHOUSE_REFUSED = 6  # the warehouse refused for a reason a person must fix (password, host, disk, ...)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), in any phase

OUR_ERRORS = (ApprovalMaxError, TokenError)


class BusyError(ApprovalMaxError):
    """Another run holds the pipeline, or another process its DuckDB file."""


class WarehouseFault(ApprovalMaxError):
    """The warehouse failed, named in one line: `<where> · <reason> · <what to do>`."""


class WarehouseUnavailable(WarehouseFault):
    """A fault that passes by itself (a restart, a dropped connection) outlasted the retry window."""


class WarehouseRefused(WarehouseFault):
    """A fault that does not pass by itself: wrong credentials, unknown host or database, no
    permission, a full disk."""


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc` and everything dlt wraps inside it (`PipelineStepFailed.exception`, `__cause__`,
    `__context__`), outermost first, each once."""
    seen: set[int] = set()
    queue: list[BaseException] = [exc]
    while queue:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        queue.extend(
            link
            for link in (getattr(current, "exception", None), current.__cause__, current.__context__)
            if isinstance(link, BaseException)
        )


def find_cause(exc: BaseException) -> BaseException:
    """The first of our errors in the chain; else the innermost exception, which says most."""
    innermost = exc
    for link in exception_chain(exc):
        if isinstance(link, OUR_ERRORS):
            return link
        innermost = link
    return innermost


def interrupted(exc: BaseException) -> bool:
    """Ctrl-C, however dlt wrapped it (`PipelineStepFailed`, its own `SignalReceivedException`), or
    as DuckDB reports it when the signal lands inside a query (`InterruptException`, or a
    RuntimeError `Query interrupted`)."""
    from dlt.common.exceptions import SignalReceivedException
    from duckdb import InterruptException

    kinds = (KeyboardInterrupt, SignalReceivedException, InterruptException)
    return any(
        isinstance(link, kinds) or (isinstance(link, RuntimeError) and str(link).startswith(DUCKDB_INTERRUPTED))
        for link in exception_chain(exc)
    )


# DuckDB's words for a query Ctrl-C stopped while its result was being read (a plain RuntimeError),
# as during dlt's truncate of a staging table.
DUCKDB_INTERRUPTED = "Query interrupted"


def exit_code(exc: BaseException) -> int:
    if isinstance(exc, WarehouseUnavailable):
        return EXIT_WAREHOUSE_UNAVAILABLE
    if isinstance(exc, WarehouseRefused):
        return EXIT_WAREHOUSE_REFUSED
    if isinstance(exc, BusyError):
        return EXIT_BUSY
    if isinstance(exc, ReauthorizationRequired):
        return EXIT_REAUTHORIZE
    if isinstance(exc, ConfigError | TokenStoreUnusable):
        return EXIT_USAGE
    return EXIT_FAILED
