"""Every error platesift raises on purpose, in one taxonomy.

The split that matters is permanent vs transient: a permanent error means the input can
never succeed (the task is completed as `rejected`), a transient one means the world was
briefly broken (hardware, network, storage) and the task must be retried later. A third kind,
fatal, means the service itself is broken (its credentials, its model): no task can succeed
until an operator fixes it, so the task is left alone (never rejected for it) and the service
stops with the configuration exit status instead of working through the queue.
"""

from __future__ import annotations


class PlatesiftError(Exception):
    """Base class of every error platesift raises on purpose."""

    permanent: bool = True
    fatal: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def kind(self) -> str:
        """Short machine-readable name of the error class, for journals and outcomes."""
        return type(self).__name__


# --- permanent: bad input, retrying cannot help -------------------------------------------


class PermanentError(PlatesiftError):
    """The input or configuration can never succeed; reject, do not retry."""

    permanent = True


class ConfigError(PermanentError):
    """A setting is unknown, of the wrong type or out of range."""


class InvalidInputError(PermanentError):
    """A task or command names an input that is missing, empty or not allowed."""


class PathNotAllowedError(InvalidInputError):
    """A path from a task escapes the NAS root."""


class VideoError(PermanentError):
    """The source is not a decodable video, or is truncated or has absurd metadata."""


class OutputError(PermanentError):
    """The output location cannot be used (not a directory, not writable)."""


class FatalError(PermanentError):
    """The service's own setup is broken: stop the service, leave the task to be retried once an
    operator has fixed it. Caught before `PermanentError` wherever a task could be rejected."""

    fatal = True


class ModelError(FatalError):
    """A model file or model manifest is missing, corrupt or inconsistent."""


class AuthError(FatalError):
    """The server refused our credentials (401/403): retrying in a loop cannot help."""


class ProtocolError(PermanentError):
    """The server refused a request as malformed or conflicting (400/404/413/422)."""


# --- transient: the world is briefly broken, retry later --------------------------------------


class TransientError(PlatesiftError):
    """A temporary failure of hardware, storage or network; retry later."""

    permanent = False


class NasUnavailableError(TransientError):
    """The NAS (source or artifact storage) cannot be read or written right now."""


class ProposerUnavailableError(TransientError):
    """The region proposer (Edge TPU or its child process) failed or is missing."""


class ServerUnavailableError(TransientError):
    """The main server could not be reached or answered with a server error."""


class LeaseLostError(TransientError):
    """The task's lease expired or was taken over; abandon the task without side effects."""


class CancelledError(TransientError):
    """The task was stopped from outside (shutdown or lease loss) before it finished."""


class DeliveryError(TransientError):
    """The server refused a finished task's heavy task or completion. The artifacts are on
    the NAS: never a reason to reject the source task; it is left to be retried."""


class ScratchError(TransientError):
    """The local scratch disk cannot be used right now (full, read-only)."""


__all__ = [
    "AuthError",
    "CancelledError",
    "ConfigError",
    "DeliveryError",
    "FatalError",
    "InvalidInputError",
    "LeaseLostError",
    "ModelError",
    "NasUnavailableError",
    "OutputError",
    "PathNotAllowedError",
    "PermanentError",
    "PlatesiftError",
    "ProposerUnavailableError",
    "ProtocolError",
    "ScratchError",
    "ServerUnavailableError",
    "TransientError",
    "VideoError",
]
