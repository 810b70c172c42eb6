"""Which language model drafts, and what it costs: settings from ``[model]`` in
secrets or from the Connect page, and a small price table for cost estimates.

Why apart from the drafter: the Connect page, the drafting job and the drafter all
need the same answer to "is a model configured, and how?", and the answer must be
safe whatever was typed: blank, null or nonsense values fall back to defaults, so a
request always has a finite timeout (case C14) and a bounded number of retries.
The API key typed on the page is stored encrypted in the vault and never shown
again; the other choices are plain app settings.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Engine

from lib.app_settings import get_setting, put_setting
from lib.errors import ConfigError

log = logging.getLogger(__name__)

MODEL_KEY_SECRET = "model_api_key"  # vault name of the key typed on the Connect page
MODEL_SETTINGS_KEY = "model"  # app setting: the Connect page's other choices
MODEL_PRICES_KEY = "model_prices"  # app setting: {model: [input, output]} overrides

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_TEMPERATURE = 0.4
DEFAULT_CONCURRENCY = 8  # issue 5: "requests run concurrently (setting, default 8)"
MAX_CONCURRENCY = 32
# A short draft takes about 2.5-3.5 s (limits.md); 60 s leaves room for slow local
# servers while never waiting for ever (C14). The SDK's own default is 600 s.
DEFAULT_TIMEOUT_S = 60.0
MAX_TIMEOUT_S = 300.0
DEFAULT_MAX_RETRIES = 3
MAX_RETRIES = 6

# USD per million tokens (input, output), from OpenAI's published price list
# (checked 2025). Change or extend with the "model_prices" app setting on the
# Connect page; a model not listed shows tokens only.
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
}


@dataclass(frozen=True)
class ModelConfig:
    """Everything the drafter needs to reach a model; the key is never shown."""

    api_key: str = field(repr=False)
    model: str = DEFAULT_MODEL
    base_url: str | None = None
    temperature: float = DEFAULT_TEMPERATURE
    concurrency: int = DEFAULT_CONCURRENCY
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_retries: int = DEFAULT_MAX_RETRIES
    source: str = "secrets"  # "secrets" or "Connect page"

    @classmethod
    def from_values(
        cls, values: Mapping[str, Any], api_key: str, source: str
    ) -> ModelConfig:
        """A config from loosely typed settings: blanks, nulls and out-of-range
        values fall back to the defaults, so the timeout is always finite."""
        base_url = str(values.get("base_url") or "").strip() or None
        return cls(
            api_key=api_key,
            model=str(values.get("model") or "").strip() or DEFAULT_MODEL,
            base_url=base_url,
            temperature=_number(values.get("temperature"), DEFAULT_TEMPERATURE, 0, 2),
            concurrency=int(
                _number(
                    values.get("concurrency"), DEFAULT_CONCURRENCY, 1, MAX_CONCURRENCY
                )
            ),
            timeout_s=_number(
                values.get("timeout_s"), DEFAULT_TIMEOUT_S, 0.001, MAX_TIMEOUT_S
            ),
            max_retries=int(
                _number(values.get("max_retries"), DEFAULT_MAX_RETRIES, 0, MAX_RETRIES)
            ),
            source=source,
        )

    @property
    def server(self) -> str:
        """Where requests go, for the page: the host of the base URL or "OpenAI"."""
        return urlsplit(self.base_url).netloc if self.base_url else "OpenAI"


def _number(value: Any, default: float, low: float, high: float) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return default
    if not math.isfinite(number) or number < low:
        return default
    return min(number, high)


def model_config(services: Any) -> ModelConfig | None:
    """The model settings in force: ``[model]`` in secrets, else the Connect page's
    (key in the vault), else None (the template drafter is used)."""
    if services.settings.model is not None:
        values = asdict(services.settings.model)
        return ModelConfig.from_values(values, str(values["api_key"]), "secrets")
    api_key = services.vault.get(MODEL_KEY_SECRET)
    if not api_key:
        return None
    values = get_setting(services.engine, MODEL_SETTINGS_KEY, {}) or {}
    return ModelConfig.from_values(values, api_key, "Connect page")


def save_model_settings(
    services: Any, values: Mapping[str, Any], api_key: str | None = None
) -> ModelConfig:
    """Store the Connect page's model choices (and a new key, when typed) and
    return the config now in force.

    Raises ConfigError when the base URL is not http(s) or no key was ever given.
    """
    base_url = str(values.get("base_url") or "").strip()
    if base_url and urlsplit(base_url).scheme not in ("http", "https"):
        raise ConfigError(
            f"The base URL {base_url!r} must start with http:// or https:// "
            "(for example http://127.0.0.1:11434/v1)."
        )
    key = (api_key or "").strip()
    if not key and not services.vault.get(MODEL_KEY_SECRET):
        raise ConfigError(
            "Type the API key (any text for a local server that needs none)."
        )
    if key:
        services.vault.put(MODEL_KEY_SECRET, key)
    stored = ModelConfig.from_values(values, "", "Connect page")
    put_setting(
        services.engine,
        MODEL_SETTINGS_KEY,
        {
            "model": stored.model,
            "base_url": stored.base_url,
            "temperature": stored.temperature,
            "concurrency": stored.concurrency,
            "timeout_s": stored.timeout_s,
            "max_retries": stored.max_retries,
        },
    )
    log.info("model settings saved from the Connect page")
    config = model_config(services)
    assert config is not None
    return config


def forget_model(services: Any) -> None:
    """Remove the Connect page's key and choices: drafts use the template again
    (a model set in secrets stays)."""
    services.vault.delete(MODEL_KEY_SECRET)
    put_setting(services.engine, MODEL_SETTINGS_KEY, {})


def save_price(engine: Engine, model: str, per_input: float, per_output: float) -> None:
    """Set the USD price per million tokens (input, output) used for ``model``."""
    prices = dict(get_setting(engine, MODEL_PRICES_KEY, {}) or {})
    prices[model] = [float(per_input), float(per_output)]
    put_setting(engine, MODEL_PRICES_KEY, prices)


def model_prices(engine: Engine) -> dict[str, tuple[float, float]]:
    """Price per million tokens by model: the built-in list plus the team's own."""
    prices = dict(DEFAULT_PRICES)
    for name, pair in (get_setting(engine, MODEL_PRICES_KEY, {}) or {}).items():
        try:
            prices[str(name)] = (float(pair[0]), float(pair[1]))
        except (TypeError, ValueError, IndexError, KeyError):
            log.warning("ignoring a malformed price entry for one model")
    return prices


def estimate_cost(
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
    prices: Mapping[str, tuple[float, float]],
) -> float | None:
    """Estimated USD for the tokens, or None when the model has no known price.

    A dated model name ("gpt-4o-mini-2024-07-18") uses its family's price.
    """
    matches = [name for name in prices if model == name or model.startswith(name)]
    if not matches:
        return None
    per_input, per_output = prices[max(matches, key=len)]
    return (prompt_tokens * per_input + completion_tokens * per_output) / 1_000_000
