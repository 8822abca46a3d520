"""Hub failures, each with a hint the user can act on. Messages never contain a token."""

from __future__ import annotations

from ltx2cli.errors import HubError


class GatedRepoAccessError(HubError):
    """The repository needs its licence accepted (and a token) before files can be fetched."""


class TokenRejectedError(HubError):
    """The hub answered 401 to the token we sent."""


class RemoteNotFoundError(HubError):
    """Repository, revision or file does not exist on the hub (or is private)."""


class HubNetworkError(HubError):
    """The hub could not be reached: connection refused, DNS, timeout."""


class OfflineError(HubError):
    """A download was asked for while LTX2_OFFLINE / HF_HUB_OFFLINE is set."""


class DiskSpaceError(HubError):
    """Not enough free space for the planned download (or the disk filled up)."""


class ChecksumError(HubError):
    """File bytes that do not hash to what the hub (or the catalog) recorded."""
