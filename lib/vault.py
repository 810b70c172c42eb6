"""Encrypted storage for tokens and keys (Gmail refresh tokens, Airtable and model
keys).

Why Fernet (from ``cryptography``): authenticated encryption with a well-reviewed
construction, so a stolen database file alone reveals no token. The key comes from
``steward.encryption_key`` in secrets; without one, a key file is created in the data
folder with owner-only permissions (0600) on first use.

Values are never logged; :func:`redact` gives the only form that may be shown.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Engine, delete, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from lib.db import utcnow
from lib.errors import ConfigError
from lib.schema import secrets_table

log = logging.getLogger(__name__)

KEY_FILE_NAME = "steward.key"


def load_or_create_key(data_dir: Path, configured: str | None = None) -> bytes:
    """The Fernet key: the configured one, or the owner-only key file."""
    if configured:
        key = configured.encode()
        try:
            Fernet(key)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                "steward.encryption_key is not a valid key; make one with "
                "`python -m lib new-key`."
            ) from exc
        return key
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / KEY_FILE_NAME
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            os.chmod(path, 0o600)
            log.warning("tightened permissions of the key file to owner-only")
        return path.read_bytes().strip()
    key = Fernet.generate_key()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    log.info("created a new owner-only key file in the data folder")
    return key


class Vault:
    """Named secrets, encrypted at rest in the ``secrets`` table."""

    def __init__(self, engine: Engine, key: bytes) -> None:
        self._engine = engine
        self._fernet = Fernet(key)

    def put(self, name: str, value: str) -> None:
        token = self._fernet.encrypt(value.encode("utf-8"))
        row = {"name": name, "ciphertext": token, "updated_at": utcnow()}
        with self._engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                stmt = sqlite_insert(secrets_table).values(**row)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["name"],
                    set_={"ciphertext": token, "updated_at": row["updated_at"]},
                )
                conn.execute(stmt)
            else:
                conn.execute(delete(secrets_table).where(secrets_table.c.name == name))
                conn.execute(secrets_table.insert().values(**row))

    def get(self, name: str) -> str | None:
        with self._engine.connect() as conn:
            token = conn.execute(
                select(secrets_table.c.ciphertext).where(secrets_table.c.name == name)
            ).scalar()
        if token is None:
            return None
        try:
            return self._fernet.decrypt(token).decode("utf-8")
        except InvalidToken as exc:
            raise ConfigError(
                f"The stored secret {name!r} cannot be decrypted with the current "
                "key (was the key file replaced?). Connect the account again."
            ) from exc

    def delete(self, name: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(delete(secrets_table).where(secrets_table.c.name == name))


def redact(value: str | None) -> str:
    """The only way a secret may appear on screen: its last four characters."""
    if not value:
        return "(not set)"
    return "••••" + value[-4:] if len(value) > 8 else "••••"
