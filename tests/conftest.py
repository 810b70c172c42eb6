"""Shared fixtures: every test gets its own data folder and database, no secrets file
from the developer's machine, and no OPENAI_* / GOOGLE_* variables."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st

from lib.background import stop_all_background_syncs
from lib.db import dispose_engines
from lib.services import Services, open_services
from lib.settings import Settings, settings_from_mapping

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"
DONOR_FORMATS = SHARED / "donor-formats"


@pytest.fixture(autouse=True)
def isolated_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    data_dir = tmp_path / "steward-data"
    monkeypatch.setenv("STEWARD_DATA_DIR", str(data_dir))
    monkeypatch.setenv("STEWARD_SECRETS", str(tmp_path / "no-secrets.toml"))
    for name in list(os.environ):
        if name.startswith(("OPENAI_", "GOOGLE_", "AIRTABLE_")):
            monkeypatch.delenv(name, raising=False)
    _clear_streamlit_caches()
    yield data_dir
    _clear_streamlit_caches()
    stop_all_background_syncs()
    dispose_engines()


def _clear_streamlit_caches() -> None:
    """AppTest runs share the process: a cache filled by one test must not answer
    the next one."""
    st.cache_data.clear()
    st.cache_resource.clear()


@pytest.fixture
def settings(isolated_environment: Path) -> Settings:
    return settings_from_mapping({})


@pytest.fixture
def services(settings: Settings) -> Services:
    """Sandbox services on a fresh database."""
    return open_services(settings)


def donor_format_files() -> list[Path]:
    return sorted(DONOR_FORMATS.glob("*.csv"))
