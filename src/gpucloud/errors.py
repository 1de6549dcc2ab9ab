"""Errors that carry a message meant for a person: the CLI prints them in one line, the API
turns them into Linode-shaped bodies. Anything else is a bug and is logged, never shown."""

from __future__ import annotations


class GpucloudError(Exception):
    """Base for every error whose text is safe and useful to show as it is."""

    status = 400

    def __init__(self, reason: str, field: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.field = field


class NotFound(GpucloudError):
    status = 404

    def __init__(self, reason: str = "Not found", field: str | None = None):
        super().__init__(reason, field)


class Conflict(GpucloudError):
    """The request is valid but the current state forbids it (already registered, busy...)."""


class ConfigError(GpucloudError):
    """Bad configuration or an unreachable dependency (database, host)."""


class ValidationErrors(GpucloudError):
    """Several field errors at once, reported together like Linode does."""

    def __init__(self, errors: list[tuple[str | None, str]]):
        super().__init__("; ".join(f"{f}: {r}" if f else r for f, r in errors))
        self.errors = errors
