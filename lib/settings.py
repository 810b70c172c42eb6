"""The one place Steward reads its configuration.

Configuration comes from ``.streamlit/secrets.toml`` (or the file named by
``STEWARD_SECRETS``), so the app and the command line read the same values. When the
code runs inside Streamlit, ``st.secrets`` is used instead, because that is what
AppTest and Streamlit Community Cloud fill in. Environment variables ``STEWARD_*``
override single values (handy for tests and containers).

This is the only module in ``lib`` that imports Streamlit, and it does so lazily.

Nothing configured means sandbox mode: a local mailbox, a local CRM and the template
drafter, all on this machine.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lib.errors import ConfigError

log = logging.getLogger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_ROOT / ".steward"
DEFAULT_SANDBOX_SENDER = "Development Office <fundraising@our-charity.example.org>"
# Background sync interval: the brief promises a log entry "within a minute".
DEFAULT_SYNC_INTERVAL_S = 20.0
# Printable ASCII without spaces, quotes or angle brackets: safe inside an href.
_PLAIN_URL = re.compile(r"[!#-;=?-~]+")


@dataclass(frozen=True)
class GmailSettings:
    """OAuth client and Gmail API settings (issue: connect Gmail for real)."""

    client_id: str
    client_secret: str
    redirect_uri: str = "http://localhost:8501/connect"
    auth_uri: str = "https://accounts.google.com/o/oauth2/auth"
    token_uri: str = "https://oauth2.googleapis.com/token"
    revoke_uri: str = "https://oauth2.googleapis.com/revoke"
    api_endpoint: str | None = None
    add_compose_scope: bool = False
    # Quota units per user per minute; Google's rule for projects made since May 2026.
    quota_units_per_minute: int = 6000
    daily_send_limit: int | None = None


@dataclass(frozen=True)
class AirtableSettings:
    """Airtable CRM settings (issue: Airtable as the CRM)."""

    token: str
    base_id: str = ""
    donors_table: str = ""
    activity_table: str = ""
    endpoint_url: str = "https://api.airtable.com"
    typecast: bool = False


@dataclass(frozen=True)
class ModelSettings:
    """Language-model drafter settings (issue: the AI fundraising assistant)."""

    api_key: str
    model: str = "gpt-4o-mini"
    base_url: str | None = None
    temperature: float = 0.4
    concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 3


@dataclass(frozen=True)
class Settings:
    """Everything Steward needs to know about where it runs and what it talks to."""

    data_dir: Path
    database_url: str
    sandbox_sender: str = DEFAULT_SANDBOX_SENDER
    excluded_addresses: tuple[str, ...] = ()
    excluded_domains: tuple[str, ...] = ()
    sync_interval_s: float = DEFAULT_SYNC_INTERVAL_S
    encryption_key: str | None = None
    # Public address of `python -m lib track`; empty means no open/click tracking.
    tracking_base_url: str = ""
    gmail: GmailSettings | None = None
    airtable: AirtableSettings | None = None
    model: ModelSettings | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def sandbox(self) -> bool:
        """True when no mailbox is configured: nothing ever leaves this machine."""
        return self.gmail is None

    @property
    def mode_label(self) -> str:
        parts = []
        parts.append("Gmail" if self.gmail else "sandbox mailbox")
        parts.append("Airtable CRM" if self.airtable else "local CRM")
        parts.append("language model" if self.model else "template drafter")
        return ", ".join(parts)

    def __repr__(self) -> str:  # never show secrets, even in a traceback
        return (
            f"Settings(data_dir={str(self.data_dir)!r}, sandbox={self.sandbox}, "
            f"mode={self.mode_label!r})"
        )


def _read_secrets_file() -> dict[str, Any]:
    path = Path(
        os.environ.get("STEWARD_SECRETS", PROJECT_ROOT / ".streamlit" / "secrets.toml")
    )
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc


def _read_streamlit_secrets() -> dict[str, Any] | None:
    """st.secrets when running inside Streamlit (app or AppTest), else None."""
    try:
        import streamlit as st
        from streamlit import runtime
    except ImportError:  # pragma: no cover - streamlit is a hard dependency
        return None
    if not runtime.exists():
        return None
    try:
        return _to_plain(st.secrets.to_dict())
    except (FileNotFoundError, KeyError, AttributeError):
        return {}
    except Exception as exc:  # StreamlitSecretNotFoundError and friends
        log.debug("no Streamlit secrets: %s", type(exc).__name__)
        return {}


def _to_plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _to_plain(v) for k, v in value.items()}
    return value


def _section(raw: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = raw.get(name) or {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"[{name}] in secrets must be a table of settings.")
    return {k: v for k, v in value.items() if v not in (None, "")}


def _build(cls: type, section: dict[str, Any], name: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise ConfigError(
            f"Unknown setting(s) in [{name}]: {', '.join(unknown)}. "
            f"Known: {', '.join(sorted(known))}."
        )
    try:
        return cls(**section)
    except TypeError as exc:
        raise ConfigError(f"[{name}] is incomplete: {exc}") from exc


def _as_tuple(value: Any, name: str) -> tuple[str, ...]:
    if value in (None, ""):
        return ()
    if isinstance(value, str):
        return tuple(v.strip().lower() for v in value.split(",") if v.strip())
    if isinstance(value, list | tuple):
        return tuple(str(v).strip().lower() for v in value if str(v).strip())
    raise ConfigError(f"{name} must be a list of strings.")


def _tracking_base_url(value: Any) -> str:
    """The tracking server's public base URL without a trailing slash ("" = off).

    Raises ConfigError unless it is an http(s) address with a host and no query.
    """
    text = str(value or "").strip()
    if not text:
        return ""
    parts = urlsplit(text)
    try:
        valid = (
            parts.scheme.lower() in ("http", "https")
            and bool(parts.hostname)
            and parts.username is None
            and parts.port != 0
            and not parts.query
            and not parts.fragment
            and _PLAIN_URL.fullmatch(text) is not None
        )
    except ValueError:  # a port that is not a number
        valid = False
    if not valid:
        raise ConfigError(
            "steward.tracking_base_url must be the public web address of the "
            "tracking server, such as https://track.our-charity.org (no query); "
            "leave it empty to turn tracking off."
        )
    return text.rstrip("/")


def settings_from_mapping(raw: Mapping[str, Any]) -> Settings:
    """Build :class:`Settings` from a secrets-shaped mapping plus STEWARD_* variables.

    Raises ConfigError naming the setting that is wrong.
    """
    steward = dict(raw.get("steward") or {})
    data_dir = Path(
        os.environ.get("STEWARD_DATA_DIR")
        or steward.get("data_dir")
        or DEFAULT_DATA_DIR
    )
    database_url = (
        os.environ.get("STEWARD_DATABASE_URL")
        or steward.get("database_url")
        or f"sqlite:///{data_dir / 'steward.db'}"
    )
    gmail = _section(raw, "gmail")
    airtable = _section(raw, "airtable")
    model = _section(raw, "model")
    try:
        interval = float(
            os.environ.get("STEWARD_SYNC_INTERVAL_S")
            or steward.get("sync_interval_s")
            or DEFAULT_SYNC_INTERVAL_S
        )
    except ValueError as exc:
        raise ConfigError("steward.sync_interval_s must be a number") from exc
    return Settings(
        data_dir=data_dir,
        database_url=str(database_url),
        sandbox_sender=str(steward.get("sandbox_sender") or DEFAULT_SANDBOX_SENDER),
        excluded_addresses=_as_tuple(
            steward.get("excluded_addresses"), "steward.excluded_addresses"
        ),
        excluded_domains=_as_tuple(
            steward.get("excluded_domains"), "steward.excluded_domains"
        ),
        sync_interval_s=interval,
        encryption_key=steward.get("encryption_key")
        or os.environ.get("STEWARD_ENCRYPTION_KEY"),
        tracking_base_url=_tracking_base_url(
            os.environ.get("STEWARD_TRACKING_BASE_URL")
            or steward.get("tracking_base_url")
        ),
        gmail=_build(GmailSettings, gmail, "gmail") if gmail else None,
        airtable=_build(AirtableSettings, airtable, "airtable") if airtable else None,
        model=_build(ModelSettings, model, "model") if model else None,
        raw=raw,
    )


def load_settings() -> Settings:
    """Read the current configuration (Streamlit secrets inside the app)."""
    raw = _read_streamlit_secrets()
    if raw is None or not raw:
        raw = _read_secrets_file()
    return settings_from_mapping(raw)
