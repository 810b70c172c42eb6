"""Drafting jobs: background runs with progress, grounding, cancel, cache and usage,
their state kept in the database."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from lib.approval import approve
from lib.db import utcnow
from lib.drafting.ai import ModelDrafter
from lib.drafting.base import CampaignBrief
from lib.drafting.jobs import (
    cancel_job,
    job_progress,
    latest_job,
    start_job,
    wait_for_job,
)
from lib.drafting.model_settings import ModelConfig
from lib.drafts import list_drafts
from lib.errors import StewardError
from lib.models import Donor
from lib.schema import draft_jobs_table
from lib.services import Services
from tests.fakes.model_server import Failure, FakeModelServer
from tests.test_drafts import add_donor

BRIEF = CampaignBrief(campaign="Spring Appeal", note="Thank them.", signature="Ana")
WAIT_S = 10.0


@pytest.fixture
def server() -> Iterator[FakeModelServer]:
    with FakeModelServer() as fake:
        yield fake
        assert all(r.path == "/v1/chat/completions" for r in fake.requests)


def model_drafter(
    server: FakeModelServer, services: Services, **settings: object
) -> ModelDrafter:
    values = {"base_url": server.base_url, "model": "gpt-4o-mini", **settings}
    config = ModelConfig.from_values(values, "sk-test", "secrets")
    return ModelDrafter(config, services.engine, sleep=lambda _s: None)


def add_donors(services: Services, count: int) -> list[Donor]:
    return [
        add_donor(services.engine, f"Donor{n} Lee", last_gift_amount=20.0 * n)
        for n in range(1, count + 1)
    ]


def drafts_by_donor(services: Services) -> dict[int, dict]:
    frame = list_drafts(services.engine)
    return {int(row["donor_id"]): row for row in frame.to_dict("records")}


def test_a_template_job_runs_in_the_background(services: Services) -> None:
    donors = add_donors(services, 3)
    blocked = add_donor(services.engine, "Bo Dee", deceased=True)
    job_id = start_job(services, [d.id for d in donors] + [blocked.id], BRIEF)
    job = wait_for_job(services.engine, job_id, WAIT_S)
    assert job.status == "done" and job.drafter == "template"
    assert (job.done, job.failed, job.total) == (3, 0, 3)
    assert job.skipped == {blocked.id: "deceased"} and job.fraction == 1.0
    assert job.model_calls == 0 and job.cost_usd is None
    drafts = drafts_by_donor(services)
    # Template drafts state only the record and the brief: the check passes.
    assert {drafts[d.id]["status"] for d in donors} == {"draft"}
    assert latest_job(services.engine) == job


def test_a_model_draft_stating_a_wrong_amount_needs_review(
    services: Services, server: FakeModelServer
) -> None:
    donors = add_donors(services, 3)
    wrong = "Dear Donor2,\nThank you! Would you now give $1,000,000?"
    server.scripted = {"Donor2 Lee": {"subject": "Hi", "body": wrong, "facts": []}}
    drafter = model_drafter(server, services)
    job_id = start_job(services, [d.id for d in donors], BRIEF, drafter=drafter)
    job = wait_for_job(services.engine, job_id, WAIT_S)
    assert job.status == "done" and (job.done, job.failed) == (3, 0)
    assert job.model_calls == 3 and job.cached == 0
    assert job.prompt_tokens > 0 and job.completion_tokens > 0
    assert job.cost_usd is not None and job.cost_usd > 0
    drafts = drafts_by_donor(services)
    flagged = drafts[donors[1].id]
    assert flagged["status"] == "needs_review"
    assert "$1,000,000 (amount not in" in flagged["review_issues"]
    assert drafts[donors[0].id]["status"] == drafts[donors[2].id]["status"] == "draft"
    refused = approve(services.engine, [flagged["id"]], "me@example.org")
    assert "needs review" in (refused[flagged["id"]] or "")


def test_an_unchanged_rerun_makes_no_model_call(
    services: Services, server: FakeModelServer
) -> None:
    ids = [d.id for d in add_donors(services, 4)]
    first = start_job(services, ids, BRIEF, drafter=model_drafter(server, services))
    wait_for_job(services.engine, first, WAIT_S)
    server.reset_log()
    again = start_job(services, ids, BRIEF, drafter=model_drafter(server, services))
    job = wait_for_job(services.engine, again, WAIT_S)
    assert job.status == "done" and job.done == 4
    assert (job.model_calls, job.cached, job.prompt_tokens) == (0, 4, 0)
    assert job.cost_usd == 0.0
    assert server.requests == []


def test_one_failing_row_shows_on_its_draft(
    services: Services, server: FakeModelServer
) -> None:
    donors = add_donors(services, 3)
    server.donor_failures = {"Donor3 Lee": [Failure(500)]}
    drafter = model_drafter(server, services, max_retries=0)
    job_id = start_job(services, [d.id for d in donors], BRIEF, drafter=drafter)
    job = wait_for_job(services.engine, job_id, WAIT_S)
    assert job.status == "done" and (job.done, job.failed) == (3, 1)
    failed = drafts_by_donor(services)[donors[2].id]
    assert failed["status"] == "failed" and "answered 500" in failed["error"]


def test_cancel_keeps_what_is_done(services: Services, server: FakeModelServer) -> None:
    server.latency_s = 0.05
    ids = [d.id for d in add_donors(services, 30)]
    drafter = model_drafter(server, services, concurrency=1)
    job_id = start_job(services, ids, BRIEF, drafter=drafter)
    with pytest.raises(StewardError, match="still going"):
        start_job(services, ids, BRIEF, drafter=drafter)  # a double click
    deadline = time.monotonic() + WAIT_S
    while job_progress(services.engine, job_id).done < 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    running = job_progress(services.engine, job_id)
    assert running.running and 0 < running.fraction < 1
    assert running.seconds_left is not None and running.seconds_left > 0
    assert cancel_job(services.engine, job_id)
    job = wait_for_job(services.engine, job_id, WAIT_S)
    assert job.status == "cancelled" and 3 <= job.done < 30
    assert len(list_drafts(services.engine)) == job.done  # every finished draft kept
    assert len(server.chat_requests()) == job.done
    assert not cancel_job(services.engine, job_id)


def test_a_job_that_cannot_start_says_why(services: Services) -> None:
    ids = [d.id for d in add_donors(services, 2)]
    broken = CampaignBrief(template="Subject: Hi\n{% if %}")
    job = wait_for_job(services.engine, start_job(services, ids, broken), WAIT_S)
    assert job.status == "failed" and "template has a mistake" in (job.error or "")
    with pytest.raises(StewardError, match="at least one donor"):
        start_job(services, [], BRIEF)


def test_a_run_cut_short_by_a_stopped_app_is_shown_as_interrupted(
    services: Services,
) -> None:
    then = utcnow() - timedelta(minutes=10)
    with services.engine.begin() as conn:
        job_id = conn.execute(
            draft_jobs_table.insert().values(
                status="running", total=5, started_at=then, updated_at=then
            )
        ).inserted_primary_key[0]
    job = job_progress(services.engine, job_id)
    assert job.status == "interrupted" and "draft the rest again" in (job.error or "")
    ids = [d.id for d in add_donors(services, 1)]
    new = wait_for_job(services.engine, start_job(services, ids, BRIEF), WAIT_S)
    assert new.status == "done"
