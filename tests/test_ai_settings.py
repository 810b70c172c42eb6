"""Model settings from secrets or the Connect page: always a finite timeout (C14),
the key stored encrypted and never in plain settings, and the cost estimate."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lib.app_settings import get_setting
from lib.drafting.ai import ModelDrafter, open_model_drafter
from lib.drafting.model_settings import (
    DEFAULT_TIMEOUT_S,
    MAX_TIMEOUT_S,
    MODEL_SETTINGS_KEY,
    estimate_cost,
    forget_model,
    model_config,
    model_prices,
    save_model_settings,
    save_price,
)
from lib.drafting.template import TemplateDrafter
from lib.errors import ConfigError
from lib.schema import secrets_table
from lib.services import Services, open_services
from lib.settings import settings_from_mapping

CONNECT = {"model": "gpt-4o-mini", "base_url": "http://127.0.0.1:9/v1"}


def secrets_services(**model: object) -> Services:
    return open_services(settings_from_mapping({"model": {"api_key": "sk-s", **model}}))


@pytest.mark.parametrize("value", ["", None, "abc", "inf", "nan", 0, -5])
def test_an_empty_or_nonsense_timeout_in_secrets_means_the_default(
    value: object,
) -> None:
    config = model_config(secrets_services(timeout_s=value))
    assert config is not None and config.timeout_s == DEFAULT_TIMEOUT_S


@pytest.mark.parametrize("value", ["", None, "soon"])
def test_an_empty_timeout_on_the_connect_page_means_the_default(
    services: Services, value: object
) -> None:
    config = save_model_settings(services, {**CONNECT, "timeout_s": value}, "sk-1")
    assert config.timeout_s == DEFAULT_TIMEOUT_S
    drafter = open_model_drafter(services)
    assert isinstance(drafter, ModelDrafter)
    assert drafter.config.timeout_s == DEFAULT_TIMEOUT_S


def test_settings_are_bounded() -> None:
    config = model_config(
        secrets_services(
            timeout_s=10_000, concurrency=500, temperature=9, max_retries=99
        )
    )
    assert config is not None
    assert config.timeout_s == MAX_TIMEOUT_S and config.concurrency == 32
    assert config.temperature == 2 and config.max_retries == 6


def test_no_model_means_the_template_drafter(services: Services) -> None:
    assert model_config(services) is None and open_model_drafter(services) is None
    assert isinstance(services.drafter(), TemplateDrafter)


def test_the_connect_page_key_is_encrypted_and_kept_apart(services: Services) -> None:
    key = "sk-very-secret-123456"
    config = save_model_settings(services, {**CONNECT, "concurrency": "4"}, key)
    assert config.api_key == key and config.concurrency == 4
    assert config.source == "Connect page" and config.server == "127.0.0.1:9"
    assert key not in repr(config)
    with services.engine.connect() as conn:
        stored = conn.execute(select(secrets_table.c.ciphertext)).scalars().all()
    assert stored and all(key.encode() not in blob for blob in stored)
    assert key not in str(get_setting(services.engine, MODEL_SETTINGS_KEY))
    assert isinstance(services.drafter(), ModelDrafter)
    # Saving again without typing the key keeps the stored one.
    again = save_model_settings(services, {**CONNECT, "model": "gpt-4.1-mini"}, "")
    assert again.api_key == key and again.model == "gpt-4.1-mini"
    forget_model(services)
    assert model_config(services) is None


def test_connect_page_input_is_checked(services: Services) -> None:
    with pytest.raises(ConfigError, match="Type the API key"):
        save_model_settings(services, CONNECT, "")
    with pytest.raises(ConfigError, match="http:// or https://"):
        save_model_settings(services, {"base_url": "ftp://x/v1"}, "sk-1")


def test_secrets_win_over_the_connect_page() -> None:
    services = secrets_services(model="gpt-4o")
    config = model_config(services)
    assert config is not None and config.source == "secrets"
    assert config.model == "gpt-4o" and config.api_key == "sk-s"


def test_cost_estimate(services: Services) -> None:
    prices = model_prices(services.engine)
    assert estimate_cost("gpt-4o-mini", 1_000_000, 0, prices) == pytest.approx(0.15)
    dated = estimate_cost("gpt-4o-mini-2024-07-18", 0, 1_000_000, prices)
    assert dated == pytest.approx(0.60)
    assert estimate_cost("llama3.1:8b", 5000, 500, prices) is None  # tokens only
    save_price(services.engine, "llama3.1:8b", 1.0, 2.0)
    prices = model_prices(services.engine)
    assert estimate_cost("llama3.1:8b", 500_000, 500_000, prices) == pytest.approx(1.5)
