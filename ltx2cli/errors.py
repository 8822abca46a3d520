"""The error hierarchy every layer raises; the CLI turns it into one line and an exit code.

Torch-free on purpose: `ltx2 --help` imports it.
"""

from __future__ import annotations


class Ltx2Error(Exception):
    """A failure the user can act on: `message` says what, `hint` says how to fix it."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class UsageError(Ltx2Error):
    """Bad flags, values or file arguments: found before anything heavy runs."""

    exit_code = 2


class ParameterError(UsageError):
    """A bad value of one named parameter: `key` is its name (`num_frames`), which the message
    uses; the CLI shows the flag (`--num-frames`) instead."""

    def __init__(self, key: str, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.key = key


class ConfigError(UsageError):
    """A YAML preset or config file that does not fit its schema."""


class MediaError(Ltx2Error):
    """A video, audio or image file that is missing, empty or cannot be decoded."""


class CheckpointError(Ltx2Error):
    """A weights file that is corrupt, truncated, or does not match the expected layout."""


class ModelNotInstalledError(Ltx2Error):
    """A catalog artifact that is not in the local cache."""


class HubError(Ltx2Error):
    """A download or cache failure: network, access, disk space, checksum."""


class DeviceError(Ltx2Error):
    """A feature asked for a device or kernel this machine does not have."""
