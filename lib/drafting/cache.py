"""Remembered model drafts, so drafting unchanged donors again costs nothing.

Why: a person often drafts a batch, edits the brief's wording elsewhere, or simply
presses "Draft emails" again after a rerun. The model's answer depends only on the
donor's facts, the campaign brief, the writing settings (temperature, prompt
version) and the model, so the sha256 of exactly those is the key: any change to
one of them makes a new key, and an unchanged row is answered from the
``draft_cache`` table without a model call.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError

from lib.db import utcnow
from lib.drafting.base import CampaignBrief, DraftResult
from lib.drafting.prompt import PROMPT_VERSION, donor_facts
from lib.models import Donor
from lib.schema import draft_cache_table


def cache_key(
    donor: Donor, brief: CampaignBrief, model: str, settings: dict[str, Any]
) -> str:
    """The sha256 (hex) of the donor's facts, the brief, the writing settings and
    the model; equal inputs always give the same key."""
    brief_fields = asdict(brief)
    brief_fields.pop("template", None)  # only the template drafter reads it
    payload = {
        "facts": donor_facts(donor),
        "brief": brief_fields,
        "settings": {**settings, "prompt_version": PROMPT_VERSION},
        "model": model,
    }
    text = json.dumps(payload, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def cached_drafts(
    engine: Engine, keys: Iterable[str]
) -> dict[str, tuple[str, str, list[str]]]:
    """(subject, body, facts) remembered for each of ``keys`` that has an entry;
    keys without one are absent. One query per 500 keys."""
    wanted = sorted({key for key in keys if key})
    found: dict[str, tuple[str, str, list[str]]] = {}
    c = draft_cache_table.c
    with engine.connect() as conn:
        for start in range(0, len(wanted), 500):
            rows = conn.execute(
                select(c.key, c.subject, c.body, c.facts).where(
                    c.key.in_(wanted[start : start + 500])
                )
            )
            for row in rows:
                found[row.key] = (row.subject, row.body, list(row.facts or []))
    return found


def remember_drafts(
    engine: Engine, entries: Iterable[tuple[str, DraftResult]], model: str
) -> None:
    """Store each successful draft under its key, in one transaction. A key that
    is already stored keeps its first answer."""
    now = utcnow()
    rows = {
        key: {
            "key": key,
            "subject": result.subject,
            "body": result.body,
            "facts": list(result.facts),
            "model": model,
            "prompt_tokens": result.prompt_tokens,
            "completion_tokens": result.completion_tokens,
            "created_at": now,
        }
        for key, result in entries
        if key and not result.error
    }
    if not rows:
        return
    try:
        _insert_new(engine, list(rows.values()))
    except IntegrityError:  # another writer stored one of the keys meanwhile
        for row in rows.values():
            try:
                _insert_new(engine, [row])
            except IntegrityError:
                pass


def _insert_new(engine: Engine, rows: list[dict[str, Any]]) -> None:
    c = draft_cache_table.c
    with engine.begin() as conn:
        keys = [row["key"] for row in rows]
        stored: set[str] = set(
            conn.execute(select(c.key).where(c.key.in_(keys))).scalars()
        )
        new = [row for row in rows if row["key"] not in stored]
        if new:
            conn.execute(draft_cache_table.insert(), new)
