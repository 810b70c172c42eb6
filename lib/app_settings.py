"""Settings people change on the pages (template, campaign brief, exclusion list,
chosen Airtable tables, model choice), kept in the database so they survive a
browser refresh and are shared with the command line.

Secrets never go here: they go to :mod:`lib.vault`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from lib.db import utcnow
from lib.schema import settings_table


def get_setting(engine: Engine, key: str, default: Any = None) -> Any:
    """The stored value for ``key``, or ``default`` when it was never set."""
    with engine.connect() as conn:
        value = conn.execute(
            select(settings_table.c.value).where(settings_table.c.key == key)
        ).scalar()
    return default if value is None else value


def put_setting(engine: Engine, key: str, value: Any) -> None:
    """Store ``value`` (anything JSON can hold) under ``key``."""
    now = utcnow()
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            stmt = sqlite_insert(settings_table).values(
                key=key, value=value, updated_at=now
            )
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["key"], set_={"value": value, "updated_at": now}
                )
            )
        else:
            conn.execute(settings_table.delete().where(settings_table.c.key == key))
            conn.execute(
                settings_table.insert().values(key=key, value=value, updated_at=now)
            )
