"""One drafting run: the donors a person picked, drafted and stored as they go.

Why in chunks: a run over a few hundred donors with a language model takes
minutes. Saving each chunk as soon as it is written means a cancel, a closed tab or
a crash keeps every draft already written, and the progress bar tells the truth.
Donors who may not be emailed (deceased, opted out, do not email, bounced, no
address) are never drafted for, and a donor whose draft is approved and waiting to
be sent keeps that draft.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from lib.donors import get_donors
from lib.drafting.base import CampaignBrief, Drafter, ProgressCallback
from lib.drafts import Review, held_drafts, save_drafts_by_donor
from lib.emails import canonical_address
from lib.models import Donor
from lib.suppression import suppressed_addresses

log = logging.getLogger(__name__)

# Donors per drafter call: small enough that a cancel or crash loses little, big
# enough for a model drafter to keep its parallel requests busy.
CHUNK_SIZE = 24


@dataclass
class DraftRun:
    """What a drafting run did, per donor id."""

    drafted: list[int] = field(default_factory=list)  # donor ids with a new draft
    draft_ids: list[int] = field(default_factory=list)  # their draft ids
    skipped: dict[int, str] = field(default_factory=dict)  # never drafted, why
    failed: dict[int, str] = field(default_factory=dict)  # drafter error per donor
    cancelled: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached: int = 0


def _eligible(
    engine: Any, donor_ids: list[int], run: DraftRun
) -> tuple[list[Donor], dict[int, Donor]]:
    by_id = {d.id: d for d in get_donors(engine, donor_ids) if d.id is not None}
    held = held_drafts(engine, donor_ids)
    with engine.connect() as conn:
        suppressed = suppressed_addresses(conn)
    eligible: list[Donor] = []
    first_at_address: dict[str, Donor] = {}
    for donor_id in donor_ids:
        donor = by_id.get(donor_id)
        if donor is None:
            run.skipped[donor_id] = "no longer in the donor list"
        elif donor.blocked_reason:
            run.skipped[donor_id] = donor.blocked_reason
        elif donor_id in held:
            run.skipped[donor_id] = held[donor_id]
        elif canonical_address(donor.email) in suppressed:
            why = suppressed[canonical_address(donor.email)]
            run.skipped[donor_id] = f"{why} (another donor record with this address)"
        elif (key := canonical_address(donor.email)) in first_at_address:
            # Two records, one inbox (household or CRM duplicate): one letter.
            other = first_at_address[key]
            run.skipped[donor_id] = f"same address as {other.name} (one email each)"
        else:
            first_at_address[key] = donor
            eligible.append(donor)
    return eligible, by_id


def _shifted(
    progress: ProgressCallback | None, done_before: int, failed_before: int, total: int
) -> ProgressCallback | None:
    """A chunk's progress callback that reports the whole run's counts."""
    if progress is None:
        return None
    report = progress

    def chunk_progress(done: int, failed: int, _chunk_total: int) -> None:
        report(done_before + done, failed_before + failed, total)

    return chunk_progress


def draft_for_donors(
    services: Any,
    donor_ids: Iterable[int],
    brief: CampaignBrief,
    drafter: Drafter | None = None,
    progress: ProgressCallback | None = None,
    cancelled: Callable[[], bool] | None = None,
    review: Review | None = None,
    *,
    chunk_size: int = CHUNK_SIZE,
) -> DraftRun:
    """Draft for each donor in ``donor_ids`` and store the drafts chunk by chunk.

    ``progress(done, failed, total)`` counts the donors being drafted (skipped
    donors are not part of ``total``); ``cancelled()`` returning True stops the
    run after the donor in hand, keeping what is done. Uses ``services.drafter()``
    when ``drafter`` is None. Raises DraftError when the drafter cannot start at
    all (e.g. a template that does not compile); drafts saved before that stay.
    """
    drafter = drafter or services.drafter()
    ids = list(dict.fromkeys(int(i) for i in donor_ids))
    run = DraftRun()
    eligible, by_id = _eligible(services.engine, ids, run)
    total = len(eligible)
    done_before = failed_before = 0

    for start in range(0, total, max(1, chunk_size)):
        if cancelled is not None and cancelled():
            run.cancelled = True
            break
        chunk = eligible[start : start + chunk_size]

        results = drafter.draft_many(
            chunk,
            brief,
            progress=_shifted(progress, done_before, failed_before, total),
            cancelled=cancelled,
        )
        saved = save_drafts_by_donor(
            services.engine, results, brief, by_id, drafter.name, review
        )
        for result in results:
            run.prompt_tokens += result.prompt_tokens
            run.completion_tokens += result.completion_tokens
            run.cached += int(result.cached)
            if result.error:
                run.failed[result.donor_id] = result.error
            elif result.donor_id in saved:
                run.drafted.append(result.donor_id)
                run.draft_ids.append(saved[result.donor_id])
            else:
                run.skipped[result.donor_id] = "a draft was approved meanwhile"
        done_before += len(results)
        failed_before = len(run.failed)
        if len(results) < len(chunk):
            run.cancelled = True
            break
    log.info(
        "drafting run: drafter=%s drafted=%d failed=%d skipped=%d cancelled=%s",
        drafter.name,
        len(run.drafted),
        len(run.failed),
        len(run.skipped),
        run.cancelled,
    )
    return run
