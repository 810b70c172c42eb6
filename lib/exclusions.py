"""The exclusion list: addresses and domains whose mail is never logged on a record.

Why: a fundraiser's Sent folder also holds mail to colleagues, the board's own
addresses and vendors. Logging that on CRM records would clutter donor histories,
so sync marks such recipients "excluded" instead. The list is the union of
``steward.excluded_addresses`` / ``steward.excluded_domains`` in secrets, the
sending account's own address and (by default) its exact domain, and the list the
dashboard edits, kept in the database setting ``sync.exclusions``.

A personal-mail domain such as gmail.com is never excluded just because the sending
account uses it: that would hide every donor with a Gmail address.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import Engine

from lib.app_settings import get_setting, put_setting
from lib.emails import InvalidAddress, address_key, domain_of, normalise_address
from lib.errors import ConfigError
from lib.settings import Settings

EXCLUSIONS_SETTING = "sync.exclusions"

# Consumer mail domains shared by many unrelated people; the sender's own domain is
# not excluded when it is one of these (source: the providers' public sign-up pages).
SHARED_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "ymail.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.net",
        "mail.com",
        "zoho.com",
        "fastmail.com",
    }
)


@dataclass(frozen=True)
class ExclusionList:
    """The part of the exclusion list people edit on the dashboard.

    A domain written ``*.example.org`` also covers its subdomains; a plain domain
    matches exactly.
    """

    addresses: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    exclude_own_domain: bool = True


def _clean_domain(value: str) -> str:
    text = value.strip().lower().lstrip("@")
    wildcard = text.startswith("*.")
    bare = text[2:] if wildcard else text
    if not bare or "." not in bare or any(ch in bare for ch in " @\r\n\t,;"):
        raise ConfigError(
            f"{value!r} is not a domain; write it like example.org or *.example.org."
        )
    return f"*.{bare}" if wildcard else bare


def _clean_address(value: str) -> str:
    try:
        return normalise_address(value)
    except InvalidAddress as exc:
        raise ConfigError(
            f"{value!r} is not an email address ({exc.reason}); fix or remove it."
        ) from exc


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def load_exclusions(engine: Engine) -> ExclusionList:
    """The edited exclusion list (empty, own domain excluded, when never saved)."""
    raw = get_setting(engine, EXCLUSIONS_SETTING, None)
    if not isinstance(raw, dict):
        return ExclusionList()
    return ExclusionList(
        addresses=_unique(address_key(a) for a in raw.get("addresses") or () if a),
        domains=_unique(d.strip().lower() for d in raw.get("domains") or () if d),
        exclude_own_domain=bool(raw.get("exclude_own_domain", True)),
    )


def save_exclusions(engine: Engine, exclusions: ExclusionList) -> ExclusionList:
    """Check, normalise and store the edited list; return what was stored.

    Raises ConfigError naming the first entry that is not an address or domain.
    """
    clean = ExclusionList(
        addresses=_unique(_clean_address(a) for a in exclusions.addresses if a.strip()),
        domains=_unique(_clean_domain(d) for d in exclusions.domains if d.strip()),
        exclude_own_domain=bool(exclusions.exclude_own_domain),
    )
    put_setting(
        engine,
        EXCLUSIONS_SETTING,
        {
            "addresses": list(clean.addresses),
            "domains": list(clean.domains),
            "exclude_own_domain": clean.exclude_own_domain,
        },
    )
    return clean


@dataclass(frozen=True)
class ExclusionRules:
    """Every exclusion in force for one sending account."""

    addresses: frozenset[str]
    domains: frozenset[str]  # exact domains
    parent_domains: frozenset[str]  # from "*.example.org": the domain and below

    def excludes(self, address: str) -> bool:
        """True when mail to ``address`` must not be logged on any record."""
        key = address_key(address)
        if key in self.addresses:
            return True
        domain = domain_of(key)
        if domain in self.domains or domain in self.parent_domains:
            return True
        return any(domain.endswith("." + parent) for parent in self.parent_domains)


def exclusion_rules(settings: Settings, engine: Engine, account: str) -> ExclusionRules:
    """The exclusions for mail sent from ``account`` (secrets, account, database)."""
    edited = load_exclusions(engine)
    addresses = {address_key(a) for a in settings.excluded_addresses}
    addresses.update(edited.addresses)
    domains: set[str] = set()
    for value in (*settings.excluded_domains, *edited.domains):
        domains.add(value.strip().lower().lstrip("@"))
    own = address_key(account) if account else ""
    if own:
        addresses.add(own)
        own_domain = domain_of(own)
        if edited.exclude_own_domain and own_domain not in SHARED_MAIL_DOMAINS:
            domains.add(own_domain)
    exact = frozenset(d for d in domains if not d.startswith("*."))
    parents = frozenset(d[2:] for d in domains if d.startswith("*."))
    return ExclusionRules(frozenset(addresses), exact, parents)
