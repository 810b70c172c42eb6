"""A drafting run: who is drafted for, saving in chunks, cancel and failures."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from lib.approval import approve
from lib.drafting.base import CampaignBrief, DraftResult, ProgressCallback
from lib.drafting.run import draft_for_donors
from lib.drafts import get_draft, list_drafts
from lib.models import Donor, DraftStatus
from lib.services import Services
from tests.test_drafts import add_donor, save_one

BRIEF = CampaignBrief(campaign="Spring Appeal", note="A new pantry opens in May.")


class CountingDrafter:
    """A drafter that writes a short draft, fails for chosen names and counts
    tokens, so the run's bookkeeping can be checked exactly."""

    name = "counting"

    def __init__(self, fail_for: Sequence[str] = ()) -> None:
        self.fail_for = set(fail_for)
        self.calls: list[list[int]] = []

    def draft_many(
        self,
        donors: Sequence[Donor],
        brief: CampaignBrief,
        *,
        progress: ProgressCallback | None = None,
        cancelled: Callable[[], bool] | None = None,
    ) -> list[DraftResult]:
        self.calls.append([int(d.id or 0) for d in donors])
        results = []
        for donor in donors:
            if cancelled is not None and cancelled():
                break
            donor_id = int(donor.id or 0)
            if donor.name in self.fail_for:
                results.append(DraftResult(donor_id, error="draft timed out - retry"))
            else:
                results.append(
                    DraftResult(
                        donor_id,
                        subject=f"Thanks, {donor.first_name}",
                        body=f"Dear {donor.first_name}, {brief.note}",
                        prompt_tokens=100,
                        completion_tokens=40,
                        cached=donor_id % 2 == 0,
                    )
                )
            if progress is not None:
                failed = sum(1 for r in results if r.error)
                progress(len(results), failed, len(donors))
        return results


def test_blocked_donors_are_never_drafted_for(services: Services) -> None:
    engine = services.engine
    ok = add_donor(engine, "Ann Lee")
    blocked = {
        add_donor(engine, "Bo Dee", deceased=True).id: "deceased",
        add_donor(engine, "Cy Fox", opted_out=True).id: "opted out",
        add_donor(engine, "Di Gray", do_not_email=True).id: "do not email",
        add_donor(engine, "Ed Hill", bounced=True).id: "address bounced",
        add_donor(engine, "Flo Ives", email=None).id: "no address",
    }
    drafter = CountingDrafter()
    run = draft_for_donors(services, [ok.id, *blocked, 9999], BRIEF, drafter=drafter)
    assert run.drafted == [ok.id]
    assert run.skipped == {**blocked, 9999: "no longer in the donor list"}
    assert drafter.calls == [[ok.id]]
    assert list_drafts(engine)["donor_id"].tolist() == [ok.id]


def test_failures_are_kept_on_their_rows_and_tokens_add_up(services: Services) -> None:
    engine = services.engine
    donors = [
        add_donor(engine, f"D{i} Lee", email=f"d{i}@example.org") for i in range(5)
    ]
    drafter = CountingDrafter(fail_for=["D2 Lee"])
    progress: list[tuple[int, int, int]] = []
    run = draft_for_donors(
        services,
        [d.id for d in donors],
        BRIEF,
        drafter=drafter,
        progress=lambda *p: progress.append(p),
        chunk_size=2,
    )
    assert drafter.calls == [
        [donors[0].id, donors[1].id],
        [donors[2].id, donors[3].id],
        [donors[4].id],
    ]
    assert run.failed == {donors[2].id: "draft timed out - retry"}
    assert run.drafted == [d.id for i, d in enumerate(donors) if i != 2]
    assert len(run.draft_ids) == 4
    assert (run.prompt_tokens, run.completion_tokens) == (400, 160)
    assert progress[-1] == (5, 1, 5)
    assert [p[0] for p in progress] == [1, 2, 3, 4, 5]
    frame = list_drafts(engine)
    failed = frame[frame["status"] == "failed"]
    assert failed["donor_id"].tolist() == [donors[2].id]
    assert failed["error"].tolist() == ["draft timed out - retry"]


def test_cancel_keeps_what_is_done(services: Services) -> None:
    engine = services.engine
    donors = [
        add_donor(engine, f"D{i} Lee", email=f"d{i}@example.org") for i in range(6)
    ]
    # Asked before each chunk (by the run) and before each donor (by the drafter):
    # chunk 1, D0, D1, chunk 2, D2 go on; the person cancels before D3.
    answers = iter([False, False, False, False, False, True])
    run = draft_for_donors(
        services,
        [d.id for d in donors],
        BRIEF,
        drafter=CountingDrafter(),
        cancelled=lambda: next(answers, True),
        chunk_size=2,
    )
    assert run.cancelled
    assert run.drafted == [donors[0].id, donors[1].id, donors[2].id]
    assert sorted(list_drafts(engine)["donor_id"]) == run.drafted


def test_an_approved_draft_is_kept_and_the_donor_skipped(services: Services) -> None:
    engine = services.engine
    ann, bob = add_donor(engine, "Ann Lee"), add_donor(engine, "Bob Roy")
    approved = save_one(engine, ann, "approved text")
    approve(engine, [approved], "fundraising@our-charity.example.org")
    run = draft_for_donors(services, [ann.id, bob.id], BRIEF, drafter=CountingDrafter())
    assert run.drafted == [bob.id]
    assert "approved" in run.skipped[ann.id]
    assert get_draft(engine, approved).body == "Body approved text"


def test_default_drafter_is_the_template_drafter(services: Services) -> None:
    ann = add_donor(services.engine, "Ann Lee", last_gift_amount=250.0)
    seen: list[tuple[Donor, str, str]] = []

    def review(donor: Donor, subject: str, body: str) -> list[str]:
        seen.append((donor, subject, body))
        return [] if "$250" in body else ["gift amount missing"]

    run = draft_for_donors(services, [ann.id, ann.id], BRIEF, review=review)
    (draft_id,) = run.draft_ids
    draft = get_draft(services.engine, draft_id)
    assert draft.drafter == "template"
    assert draft.status == DraftStatus.DRAFT
    assert draft.subject == "Spring Appeal: thank you, Ann"
    assert "$250" in draft.body and "A new pantry opens in May." in draft.body
    assert len(seen) == 1 and seen[0][0].id == ann.id


def test_two_records_at_one_address_get_one_draft(services: Services) -> None:
    """Bloomerang records 3 and 16: June Pemberton twice (un-merged duplicate)."""
    first = add_donor(services.engine, "June Pemberton", email="june.p@example.com")
    second = add_donor(services.engine, "June A. Pemberton", email="june.p@example.com")
    assert first.id is not None and second.id is not None
    run = draft_for_donors(services, [first.id, second.id], CampaignBrief())
    assert len(run.draft_ids) == 1
    assert "same address" in run.skipped[second.id]
