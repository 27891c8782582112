"""The ApprovalMax error family: the CLI turns each into one line and an exit code."""

from __future__ import annotations

from ..errors import ConnectorError


class ApprovalMaxError(ConnectorError):
    """Base of every error this connector raises on purpose."""


class ConfigError(ApprovalMaxError):
    """Configuration or usage is wrong; the message says which setting and how to fix it."""


class ApiError(ApprovalMaxError):
    """The API answered with an error status."""

    def __init__(
        self,
        method: str,
        path: str,
        status: int,
        title: str | None,
        detail: str | None,
        parameters: tuple[str, ...] = (),
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        self.title = title
        self.detail = detail
        self.parameters = parameters  # names the body's `error.parameters[]` found fault with
        parts = [f"{method} {path} answered {status}"]
        if title:
            parts.append(f" {title}")
        if detail:
            parts.append(f": {detail}")
        super().__init__("".join(parts))

    def names_parameter(self, name: str) -> bool:
        """Whether a 400 blames the query parameter `name` (in `error.parameters[]` or its text)."""
        return self.status == 400 and (name in self.parameters or name in str(self))


class ApiResponseError(ApprovalMaxError):
    """The API answered 200 with something we cannot use (HTML, broken JSON, wrong shape)."""


class ApiUnavailable(ApprovalMaxError):
    """The API could not be reached, or kept failing, after every retry."""
