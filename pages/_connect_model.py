"""The Connect page's drafting-assistant section: which language model writes first
drafts (OpenAI, or any OpenAI-compatible server by base URL), and a test call.

The API key is stored encrypted and never shown again: the field stays empty and
typing a new key replaces the stored one. Without a model, drafts come from the
mail-merge template.
"""

from __future__ import annotations

import streamlit as st

from lib.drafting.ai import ModelDrafter
from lib.drafting.model_settings import (
    DEFAULT_MODEL,
    MAX_CONCURRENCY,
    MAX_TIMEOUT_S,
    ModelConfig,
    forget_model,
    model_config,
    model_prices,
    save_model_settings,
    save_price,
)
from lib.errors import StewardError
from lib.services import Services
from pages._common import plain, show_error


def _summary(config: ModelConfig) -> None:
    st.text(
        f"Model: {config.model}   Server: {config.server}   "
        f"Temperature: {config.temperature:g}   Drafts at a time: "
        f"{config.concurrency}   Timeout: {config.timeout_s:g} s   "
        "API key: stored (encrypted)"
    )


def _test_connection(config: ModelConfig) -> None:
    if st.button("Test connection", key="model_test"):
        try:
            answer = ModelDrafter(config).test_connection()
        except StewardError as exc:
            show_error(exc)
        else:
            st.success(plain(f"Connected: {answer}"), icon=":material/check_circle:")


def _form(services: Services, config: ModelConfig | None) -> None:
    current = config or ModelConfig(api_key="", source="Connect page")
    with st.form("model_settings"):
        model = st.text_input("Model", value=current.model or DEFAULT_MODEL)
        base_url = st.text_input(
            "Base URL (empty for OpenAI; e.g. http://127.0.0.1:11434/v1 for a "
            "local server)",
            value=current.base_url or "",
        )
        api_key = st.text_input(
            "API key",
            type="password",
            value="",
            placeholder="stored: type a new key to replace it" if config else "sk-…",
            help="Stored encrypted on this machine and never shown again.",
        )
        left, middle, right = st.columns(3)
        temperature = left.slider(
            "Temperature", 0.0, 1.5, float(current.temperature), 0.1
        )
        concurrency = middle.number_input(
            "Drafts at a time", 1, MAX_CONCURRENCY, int(current.concurrency)
        )
        timeout_s = right.number_input(
            "Timeout per request (s)", 5.0, MAX_TIMEOUT_S, float(current.timeout_s)
        )
        saved = st.form_submit_button("Save model settings", type="primary")
    if saved:
        values = {
            "model": model,
            "base_url": base_url,
            "temperature": temperature,
            "concurrency": concurrency,
            "timeout_s": timeout_s,
        }
        try:
            save_model_settings(services, values, api_key)
        except StewardError as exc:
            show_error(exc)
        else:
            st.toast("Model settings saved.")
            st.rerun()


def _prices(services: Services, config: ModelConfig) -> None:
    prices = model_prices(services.engine)
    known = prices.get(config.model)
    with st.expander("Price per million tokens (for the cost estimate)"):
        left, right = st.columns(2)
        per_input = left.number_input(
            "Input (USD)", 0.0, 1000.0, known[0] if known else 0.0, key="price_in"
        )
        per_output = right.number_input(
            "Output (USD)", 0.0, 1000.0, known[1] if known else 0.0, key="price_out"
        )
        if st.button("Save price", key="price_save"):
            save_price(services.engine, config.model, per_input, per_output)
            st.toast("Price saved.")


def render(services: Services) -> None:
    """Show the model settings, the form to change them and a connection test."""
    try:
        config = model_config(services)
    except StewardError as exc:
        show_error(exc)
        return
    if config is None:
        st.caption(
            "No model configured: drafts come from the mail-merge template. Add an "
            "OpenAI key, or the address of an OpenAI-compatible server, to have an "
            "assistant write a first draft for each donor."
        )
    if config is not None and config.source == "secrets":
        st.info("The model is set in secrets.toml ([model]); change it there.")
        _summary(config)
    else:
        if config is not None:
            _summary(config)
        _form(services, config)
    if config is not None:
        _prices(services, config)
        _test_connection(config)
        if config.source != "secrets" and st.button("Forget the model", key="model_x"):
            forget_model(services)
            st.toast("Model removed: drafts use the template again.")
            st.rerun()
