"""The embedded database: WAL, foreign keys, versioned migrations, durability."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from lib import db
from lib.app_settings import get_setting, put_setting
from lib.db import create_db_engine, current_version, migrate


def test_sqlite_runs_in_wal_with_foreign_keys(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 's.db'}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    assert current_version(engine) == db.SCHEMA_VERSION


def test_foreign_keys_are_enforced(tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 's.db'}")
    with pytest.raises(Exception, match="FOREIGN KEY"):
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO crm_record_emails (record_id, email) "
                    "VALUES ('missing', 'a@example.org')"
                )
            )


def test_new_migration_runs_once_on_an_existing_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    engine = create_db_engine(url)
    put_setting(engine, "kept", {"value": 1})
    calls: list[int] = []

    def add_column(conn: Connection) -> None:
        calls.append(1)
        conn.execute(text("ALTER TABLE settings ADD COLUMN note TEXT"))

    monkeypatch.setattr(db, "MIGRATIONS", [*db.MIGRATIONS, add_column])
    assert migrate(engine) == len(db.MIGRATIONS)
    assert migrate(engine) == len(db.MIGRATIONS)
    assert calls == [1]
    assert get_setting(engine, "kept") == {"value": 1}


def test_settings_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    first = create_db_engine(url)
    put_setting(first, "campaign", {"name": "Spring Gala", "note": "Thank you"})
    put_setting(first, "campaign", {"name": "Spring Gala 2026", "note": "Thanks"})
    first.dispose()
    second = create_db_engine(url)
    assert get_setting(second, "campaign") == {
        "name": "Spring Gala 2026",
        "note": "Thanks",
    }
    assert get_setting(second, "missing", "default") == "default"
