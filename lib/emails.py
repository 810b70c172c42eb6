"""Email addresses: validate, normalise and compare them the same way everywhere.

The importer, the message builder and sync all need one answer to "is this the same
address?", or a donor would be matched on import and missed on logging. Steward
compares addresses in lower case (mailbox providers treat local parts
case-insensitively in practice), keeps plus tags (``donor+gala@example.org`` is a
distinct, valid address) and accepts internationalised domains and local parts.
"""

from __future__ import annotations

from email.utils import getaddresses

from email_validator import EmailNotValidError, validate_email


class InvalidAddress(ValueError):
    """The text is not a usable email address; ``reason`` says why."""

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(f"{value!r}: {reason}")
        self.value = value
        self.reason = reason


def normalise_address(value: str) -> str:
    """Return the address in Steward's canonical form (trimmed, lower case).

    Raises InvalidAddress with a reason a person can act on.
    """
    text = (value or "").strip()
    if not text:
        raise InvalidAddress(value, "no address")
    if any(ch in text for ch in "\r\n"):
        raise InvalidAddress(value, "line break inside the address")
    try:
        result = validate_email(
            text,
            check_deliverability=False,
            allow_smtputf8=True,
            allow_quoted_local=False,
            allow_domain_literal=False,
        )
    except EmailNotValidError as exc:
        raise InvalidAddress(value, str(exc)) from None
    return result.normalized.lower()


def canonical_address(value: str | None) -> str:
    """The one form used to compare addresses for safety checks: the normalised
    address when it is valid (IDNA and Unicode forms folded, so
    "fw@ｅｘａｍｐｌｅ.org" and "user@xn--mnchen-3ya.de" compare equal to what they
    deliver to), else the trimmed lower-case text. "" for nothing."""
    text = (value or "").strip()
    if not text:
        return ""
    try:
        return normalise_address(text)
    except InvalidAddress:
        return text.lower()


def is_valid_address(value: str) -> bool:
    try:
        normalise_address(value)
    except InvalidAddress:
        return False
    return True


def address_key(value: str) -> str:
    """The comparison key for an address already known to be valid."""
    return value.strip().lower()


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[-1].strip().lower()


def addresses_in_header(value: str | None) -> list[str]:
    """Every address in a To/Cc/Bcc header value, as comparison keys, in order."""
    if not value:
        return []
    found: list[str] = []
    for _name, addr in getaddresses([value]):
        if addr and "@" in addr:
            key = address_key(addr)
            if key not in found:
                found.append(key)
    return found
