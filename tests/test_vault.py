"""Tokens and keys: encrypted at rest, owner-only key file, never shown."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from lib.errors import ConfigError
from lib.schema import secrets_table
from lib.services import Services
from lib.vault import Vault, load_or_create_key, redact


def test_key_file_is_owner_only_and_reused(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path)
    mode = stat.S_IMODE((tmp_path / "steward.key").stat().st_mode)
    assert mode == 0o600
    assert load_or_create_key(tmp_path) == key


def test_loose_key_file_permissions_are_tightened(tmp_path: Path) -> None:
    load_or_create_key(tmp_path)
    path = tmp_path / "steward.key"
    path.chmod(0o644)
    load_or_create_key(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_configured_key_must_be_valid(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="encryption_key"):
        load_or_create_key(tmp_path, "not-a-key")
    good = Fernet.generate_key().decode()
    assert load_or_create_key(tmp_path, good) == good.encode()
    assert not (tmp_path / "steward.key").exists()


def test_secret_is_encrypted_at_rest(services: Services) -> None:
    services.vault.put("gmail:ann@example.org", "1//refresh-token-value")
    with services.engine.connect() as conn:
        stored = conn.execute(select(secrets_table.c.ciphertext)).scalar_one()
    assert b"refresh-token-value" not in stored
    assert services.vault.get("gmail:ann@example.org") == "1//refresh-token-value"
    services.vault.put("gmail:ann@example.org", "rotated")
    assert services.vault.get("gmail:ann@example.org") == "rotated"
    services.vault.delete("gmail:ann@example.org")
    assert services.vault.get("gmail:ann@example.org") is None


def test_wrong_key_gives_a_clear_error(services: Services) -> None:
    services.vault.put("airtable", "pat-secret")
    other = Vault(services.engine, Fernet.generate_key())
    with pytest.raises(ConfigError, match="cannot be decrypted"):
        other.get("airtable")


def test_redact_shows_only_the_tail() -> None:
    assert redact("sk-abcdefghijkl1234") == "••••1234"
    assert "abc" not in redact("sk-abcdefghijkl1234")
    assert redact("") == "(not set)"
    assert redact("short") == "••••"
