"""Exit codes and the search for our own error inside dlt's wrappers."""

from __future__ import annotations

from sources.approvalmax.errors import ApprovalMaxError, ConfigError
from sources.oauth_tokens import ReauthorizationRequired, TokenError, TokenStoreUnusable

EXIT_OK = 0
EXIT_FAILED = 1  # the run failed, or some companies could not be loaded
EXIT_USAGE = 2  # bad option, bad or missing configuration
EXIT_REAUTHORIZE = 3  # a person must authorise the connection again
EXIT_BUSY = 4  # another run holds the pipeline, or another process the DuckDB file

OUR_ERRORS = (ApprovalMaxError, TokenError)


def find_cause(exc: BaseException) -> BaseException:
    """The first of our errors in the chain dlt wraps around it (`PipelineStepFailed.exception`,
    `__cause__`, `__context__`); else the innermost exception, which says most."""
    seen: set[int] = set()
    queue: list[BaseException] = [exc]
    innermost = exc
    while queue:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OUR_ERRORS):
            return current
        innermost = current
        for link in (getattr(current, "exception", None), current.__cause__, current.__context__):
            if isinstance(link, BaseException):
                queue.append(link)
    return innermost


def exit_code(exc: BaseException) -> int:
    from .working_folder import BusyError

    if isinstance(exc, BusyError):
        return EXIT_BUSY
    if isinstance(exc, ReauthorizationRequired):
        return EXIT_REAUTHORIZE
    if isinstance(exc, ConfigError | TokenStoreUnusable):
        return EXIT_USAGE
    return EXIT_FAILED
