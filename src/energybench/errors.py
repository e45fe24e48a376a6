"""Error types of the core library.

The core never prints or exits: it raises an :class:`EnergybenchError`. The CLI turns each into one
line on stderr and the error's ``exit_code`` (2 = bad usage, config or input; 1 = a run failed).
"""

from __future__ import annotations


class EnergybenchError(Exception):
    """Base class of every error the CLI reports as one clear line."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message and its fix, on one line (newlines folded)."""
        text = self.message if not self.hint else f"{self.message} ({self.hint})"
        return " ".join(text.split())


class UsageError(EnergybenchError):
    """Bad usage, configuration or input: exit code 2."""

    exit_code = 2


class ConfigError(UsageError):
    """A configuration (file or flags) is invalid. Names the field, the value and what is allowed."""


class ModelError(UsageError):
    """A model reference, alias, or GGUF file is invalid."""


class FetchError(EnergybenchError):
    """Downloading or registering a model failed (network, HTTP status, checksum, disk)."""


class ChecksumError(FetchError):
    """A downloaded file's sha256 did not match the expected one."""

    exit_code = 2


class MeterError(EnergybenchError):
    """A power meter could not be opened or read."""


class BackendError(EnergybenchError):
    """The inference backend failed (model load, decode, worker crash)."""


class WorkerCrashed(BackendError):
    """The inference worker process died (e.g. a segfault in native code)."""

    def __init__(self, message: str, *, returncode: int | None, stderr_tail: str = "",
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.returncode = returncode
        self.stderr_tail = stderr_tail


class ResultsError(EnergybenchError):
    """A results directory is missing, unreadable, or does not match the config on resume."""

    exit_code = 2
