"""Errors Steward shows to people.

Every error a fundraiser can act on derives from :class:`StewardError`; pages catch
that one class and show its message kindly, while any other exception is a bug and
is allowed to surface.

    StewardError
    ├── ConfigError          settings or secrets are missing or malformed
    ├── ImportError_         a donor file cannot be read (row-level problems go in the
    │                        import report instead)
    ├── RefusedFileError     a file Steward must not use (e.g. the FEC contributor list)
    ├── MessageError         an email cannot be built (bad header value, no recipient)
    ├── SendError            the mailbox refused or failed a send
    │   └── SendLimitReached the daily sending limit is reached; the rest stay approved
    ├── MailboxError         reading the Sent folder failed
    ├── AuthError            a Google account is not (or no longer) connected
    ├── CrmError             the CRM refused a read or a write
    │   └── CrmSchemaError   a table or field is missing or of the wrong type
    └── DraftError           the drafter failed for one donor
"""

from __future__ import annotations

from typing import Any


class StewardError(Exception):
    """Base of every error that carries a message meant for a person.

    ``detail`` keeps the service's own payload (when there is one) for logs and
    support, without putting it in the sentence a fundraiser reads.
    """

    def __init__(self, message: str, *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def __str__(self) -> str:
        return self.message


class ConfigError(StewardError, ValueError):
    """A setting or secret is missing or malformed."""


class ImportError_(StewardError, ValueError):  # noqa: N801 - avoid shadowing builtin
    """A donor file cannot be read at all."""


class RefusedFileError(StewardError, ValueError):
    """A file Steward refuses to import, with the reason."""


class MessageError(StewardError, ValueError):
    """An email cannot be built safely."""


class SendError(StewardError, RuntimeError):
    """A send failed; the draft keeps its text and can be retried."""


class SendLimitReached(SendError):
    """The daily sending limit is reached; remaining drafts stay approved."""


class MailboxError(StewardError, RuntimeError):
    """Reading the mailbox failed."""


class AuthError(StewardError, PermissionError):
    """The Google account is not connected, or its permission was withdrawn."""


class CrmError(StewardError, RuntimeError):
    """The CRM refused a read or write."""


class CrmSchemaError(CrmError):
    """A CRM table or field is missing or of the wrong type."""


class DraftError(StewardError, RuntimeError):
    """Writing one donor's draft failed."""
