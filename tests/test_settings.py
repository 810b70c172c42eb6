"""Configuration: sandbox by default, sections validated, secrets never in repr."""

from __future__ import annotations

from pathlib import Path

import pytest

from lib.errors import ConfigError
from lib.settings import load_settings, settings_from_mapping


def test_no_configuration_means_sandbox(isolated_environment: Path) -> None:
    settings = load_settings()
    assert settings.sandbox
    assert settings.gmail is None and settings.airtable is None
    assert settings.model is None
    assert settings.data_dir == isolated_environment
    assert settings.database_url.endswith("steward.db")
    assert "sandbox mailbox" in settings.mode_label


def test_secrets_file_configures_services(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(
        '[gmail]\nclient_id = "id-123"\nclient_secret = "shh-very-secret"\n'
        '[model]\napi_key = "sk-secret-key"\nbase_url = "http://127.0.0.1:9/v1"\n'
        '[steward]\nexcluded_domains = ["Our-Charity.org"]\n',
        encoding="utf-8",
    )
    monkeypatch.setenv("STEWARD_SECRETS", str(secrets))
    settings = load_settings()
    assert not settings.sandbox
    assert settings.gmail is not None and settings.gmail.client_id == "id-123"
    assert settings.model is not None and settings.model.concurrency == 8
    assert settings.excluded_domains == ("our-charity.org",)
    shown = repr(settings)
    assert "shh-very-secret" not in shown and "sk-secret-key" not in shown


def test_unknown_setting_is_named() -> None:
    with pytest.raises(ConfigError, match="client_sekret"):
        settings_from_mapping({"gmail": {"client_id": "x", "client_sekret": "y"}})


def test_incomplete_section_is_reported() -> None:
    with pytest.raises(ConfigError, match=r"\[gmail\] is incomplete"):
        settings_from_mapping({"gmail": {"client_id": "x"}})


def test_malformed_toml_names_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "secrets.toml"
    bad.write_text("[gmail\nclient_id=", encoding="utf-8")
    monkeypatch.setenv("STEWARD_SECRETS", str(bad))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings()


def test_mode_label_follows_what_is_connected(isolated_environment: Path) -> None:
    """A model entered on the Connect page (not in secrets) shows in the banner."""
    from lib.drafting.model_settings import save_model_settings
    from lib.services import open_services

    services = open_services()
    assert services.mode_label == "sandbox mailbox, local CRM, template drafter"
    save_model_settings(
        services,
        {"model": "small-local-model", "base_url": "http://127.0.0.1:9/v1"},
        api_key="sk-local",
    )
    assert "model:small-local-model" in services.mode_label
