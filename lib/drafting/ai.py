"""Placeholder until the language-model drafter lands (issue 5)."""

from __future__ import annotations

from typing import Any


def open_model_drafter(services: Any) -> None:
    """No model support yet: always the template drafter."""
    return None
