"""Where Steward finds its Airtable connection: secrets first, then the Connect page.

Why two sources: a team deploying Steward may put the token and tables in
``.streamlit/secrets.toml`` ([airtable]); a fundraiser trying it out enters the token
on the Connect page (stored encrypted with :mod:`lib.vault`) and picks the base and
tables from lists. A value in secrets always wins; choices made on the page (and
the field mapping, which only the page sets) live in :mod:`lib.app_settings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lib.airtable_client import DEFAULT_ENDPOINT_URL
from lib.airtable_donors import DonorMapping
from lib.airtable_schema import DEFAULT_ACTIVITY_TABLE, activity_field_names
from lib.app_settings import get_setting, put_setting

if TYPE_CHECKING:
    from lib.services import Services

TOKEN_SECRET = "airtable.token"  # name in the vault
CHOICES_SETTING = "airtable"  # key in app_settings: base, tables, mapping, typecast


@dataclass(frozen=True)
class AirtableConfig:
    """Everything needed to talk to one Airtable base as the CRM."""

    token: str = field(repr=False)
    base_id: str
    donors_table: str
    activity_table: str = DEFAULT_ACTIVITY_TABLE
    endpoint_url: str = DEFAULT_ENDPOINT_URL
    typecast: bool = False
    donor_mapping: DonorMapping | None = None  # None: suggest from the schema
    activity_fields: dict[str, str] = field(default_factory=activity_field_names)
    token_from_secrets: bool = False
    base_name: str = ""


def saved_choices(services: Services) -> dict[str, Any]:
    """What the Connect page saved (empty dict when nothing yet)."""
    value = get_setting(services.engine, CHOICES_SETTING, {})
    return dict(value) if isinstance(value, dict) else {}


def save_choices(services: Services, **changes: Any) -> dict[str, Any]:
    """Merge ``changes`` into the saved choices and store them; return them all."""
    choices = {**saved_choices(services), **changes}
    put_setting(services.engine, CHOICES_SETTING, choices)
    return choices


def airtable_token(services: Services) -> tuple[str | None, bool]:
    """(token, from_secrets): the secrets token, else the one stored encrypted."""
    secrets = services.settings.airtable
    if secrets is not None and secrets.token:
        return secrets.token, True
    return services.vault.get(TOKEN_SECRET), False


def store_token(services: Services, token: str) -> None:
    """Keep a token entered on the Connect page, encrypted."""
    services.vault.put(TOKEN_SECRET, token.strip())


def forget_token(services: Services) -> None:
    services.vault.delete(TOKEN_SECRET)


def endpoint_url(services: Services) -> str:
    """Airtable's API address: from secrets, else a saved choice (a proxy, or the
    local test server), else api.airtable.com."""
    secrets = services.settings.airtable
    if secrets is not None and secrets.endpoint_url != DEFAULT_ENDPOINT_URL:
        return secrets.endpoint_url
    return str(saved_choices(services).get("endpoint_url") or DEFAULT_ENDPOINT_URL)


def load_airtable_config(services: Services) -> AirtableConfig | None:
    """The Airtable connection, or None when no token, base or donors table is
    set (then the local CRM is used). Raises ConfigError when the stored token
    cannot be decrypted."""
    token, from_secrets = airtable_token(services)
    if not token:
        return None
    secrets = services.settings.airtable
    choices = saved_choices(services)

    def pick(name: str) -> str:
        value = getattr(secrets, name, "") if secrets is not None else ""
        return str(value or choices.get(name) or "")

    base_id, donors_table = pick("base_id"), pick("donors_table")
    if not base_id or not donors_table:
        return None
    mapping = choices.get("donor_mapping")
    return AirtableConfig(
        token=token,
        base_id=base_id,
        donors_table=donors_table,
        activity_table=pick("activity_table") or DEFAULT_ACTIVITY_TABLE,
        endpoint_url=endpoint_url(services),
        typecast=bool(
            (secrets.typecast if secrets else False) or choices.get("typecast")
        ),
        donor_mapping=DonorMapping.from_dict(mapping) if mapping else None,
        activity_fields=activity_field_names(choices.get("activity_fields")),
        token_from_secrets=from_secrets,
        base_name=str(choices.get("base_name") or ""),
    )
