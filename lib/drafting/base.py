"""The interface between the donor list and whatever writes first drafts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from lib.models import Donor


@dataclass(frozen=True)
class CampaignBrief:
    """What the person asked for on the donor list page, shared by every draft."""

    campaign: str = ""
    note: str = ""  # the campaign note / brief the drafts may draw on
    tone: str = "warm"
    length: str = "short"
    signature: str = ""
    template: str | None = None  # the template drafter's text, when edited


@dataclass
class DraftResult:
    """The drafter's answer for one donor: a draft, or an error on that row."""

    donor_id: int
    subject: str = ""
    body: str = ""
    facts: list[str] = field(default_factory=list)
    error: str | None = None
    cached: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0


ProgressCallback = Callable[[int, int, int], None]  # done, failed, total


class Drafter(Protocol):
    """Writes drafts; never sends anything."""

    name: str

    def draft_many(
        self,
        donors: Sequence[Donor],
        brief: CampaignBrief,
        *,
        progress: ProgressCallback | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[DraftResult]:
        """One result per donor, in order (fewer if cancelled: those done are kept).

        A failure on one donor is reported on its result and does not stop the rest.
        """
        ...
