"""The model drafter against a local OpenAI-compatible server, through the real
``openai`` client: structured output and its fallbacks, retries, failures on one
row, cancel, progress, concurrency and the cache."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from lib.drafting.ai import QUOTA_MESSAGE, TIMED_OUT, ModelDrafter
from lib.drafting.base import CampaignBrief
from lib.drafting.model_settings import ModelConfig
from lib.models import Donor
from lib.services import Services
from tests.fakes.model_server import Failure, FakeModelServer

BRIEF = CampaignBrief(campaign="Spring Appeal", note="Thank them.", signature="Ana")


def donors(count: int) -> list[Donor]:
    return [
        Donor(
            name=f"Donor {n}",
            first_name=f"Name{n}",
            last_gift_amount=10.0 * n,
            id=n,
        )
        for n in range(1, count + 1)
    ]


@pytest.fixture
def server() -> Iterator[FakeModelServer]:
    with FakeModelServer() as fake:
        yield fake
        # Nothing but chat completions reached the server.
        assert all(r.path == "/v1/chat/completions" for r in fake.requests)


def make(
    server: FakeModelServer,
    services: Services | None = None,
    *,
    sleeps: list[float] | None = None,
    **settings: object,
) -> ModelDrafter:
    values = {"base_url": server.base_url, "model": "gpt-4o-mini", **settings}
    config = ModelConfig.from_values(values, "sk-test-key", "secrets")
    sink = sleeps if sleeps is not None else []
    engine = services.engine if services is not None else None
    return ModelDrafter(config, engine, sleep=sink.append)


def test_request_uses_structured_output_and_the_key(server: FakeModelServer) -> None:
    [result] = make(server, temperature=0.7).draft_many(donors(1), BRIEF)
    assert result.error is None
    assert result.body.startswith("Dear Name1,") and result.facts == ["last gift"]
    assert result.prompt_tokens > 0 and result.completion_tokens > 0
    [request] = server.chat_requests()
    assert request.authorization == "Bearer sk-test-key"
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["temperature"] == 0.7
    schema = request.body["response_format"]["json_schema"]["schema"]
    assert request.response_format == "json_schema"
    assert schema["required"] == ["subject", "body", "facts"]


def test_server_without_json_schema_falls_back_to_json_mode_once(
    server: FakeModelServer,
) -> None:
    server.json_schema_supported = False
    results = make(server, concurrency=1).draft_many(donors(3), BRIEF)
    assert [r.error for r in results] == [None, None, None]
    formats = [r.response_format for r in server.chat_requests()]
    assert formats == ["json_schema", "json_object", "json_object", "json_object"]


def test_server_without_any_json_support_is_parsed_from_text(
    server: FakeModelServer,
) -> None:
    server.json_schema_supported = server.json_mode_supported = False
    results = make(server, concurrency=1).draft_many(donors(2), BRIEF)
    assert [r.subject for r in results] == ["Thank you", "Thank you"]
    formats = [r.response_format for r in server.chat_requests()]
    assert formats == ["json_schema", "json_object", None, None]


def test_a_reply_that_is_not_json_fails_only_its_row(server: FakeModelServer) -> None:
    server.scripted = {"Donor 2": "Sure! Here is a lovely email for you."}
    results = make(server).draft_many(donors(3), BRIEF)
    assert results[0].error is None and results[2].error is None
    assert "not valid JSON with a subject and body" in (results[1].error or "")
    assert results[1].subject == ""


def test_one_failing_row_is_retried_then_reported_and_the_rest_go_on(
    server: FakeModelServer,
) -> None:
    server.donor_failures = {"Donor 2": [Failure(500)] * 3}
    sleeps: list[float] = []
    results = make(server, sleeps=sleeps, max_retries=2).draft_many(donors(4), BRIEF)
    assert [r.error is None for r in results] == [True, False, True, True]
    assert "answered 500" in (results[1].error or "")
    tries = [r for r in server.chat_requests() if r.donor["name"] == "Donor 2"]
    assert len(tries) == 3  # the first try and two retries, then it stops
    assert len(sleeps) == 2 and all(0 < s <= 8 for s in sleeps)


def test_retry_after_is_honoured(server: FakeModelServer) -> None:
    server.fail_next(Failure(429, "rate_limit_exceeded", retry_after=1.5))
    sleeps: list[float] = []
    [result] = make(server, sleeps=sleeps).draft_many(donors(1), BRIEF)
    assert result.error is None
    assert sleeps == [1.5]
    assert [r.status for r in server.chat_requests()] == [429, 200]


def test_a_long_retry_after_is_not_sat_out(server: FakeModelServer) -> None:
    server.fail_next(Failure(429, "rate_limit_exceeded", retry_after=600))
    sleeps: list[float] = []
    [result] = make(server, sleeps=sleeps).draft_many(donors(1), BRIEF)
    assert "asks to wait 600 s" in (result.error or "")
    assert sleeps == [] and len(server.chat_requests()) == 1


def test_insufficient_quota_is_not_retried_and_stops_the_run(
    server: FakeModelServer,
) -> None:
    server.fail_next(Failure(429, "insufficient_quota"))
    sleeps: list[float] = []
    results = make(server, sleeps=sleeps, concurrency=1).draft_many(donors(3), BRIEF)
    assert [r.error for r in results] == [QUOTA_MESSAGE] * 3
    assert "billing" in QUOTA_MESSAGE
    assert len(server.chat_requests()) == 1 and sleeps == []


def test_a_refused_key_stops_the_run(server: FakeModelServer) -> None:
    server.fail_next(Failure(401, "invalid_api_key"))
    results = make(server, concurrency=1).draft_many(donors(2), BRIEF)
    assert all("refused the API key" in (r.error or "") for r in results)
    assert len(server.chat_requests()) == 1


def test_a_timed_out_row_says_retry_and_others_are_unaffected(
    server: FakeModelServer,
) -> None:
    # C14: the client timeout is finite, retries are bounded, the row says so.
    server.donor_failures = {"Donor 1": [Failure(200, hang_s=3.0)] * 2}
    drafter = make(server, timeout_s=0.3, max_retries=1)
    started = time.monotonic()
    results = drafter.draft_many(donors(3), BRIEF)
    assert results[0].error == TIMED_OUT == "draft timed out – retry"
    assert results[1].error is None and results[2].error is None
    assert time.monotonic() - started < 2.5


def test_progress_counts_every_finished_row(server: FakeModelServer) -> None:
    server.scripted = {"Donor 3": "not json"}
    seen: list[tuple[int, int, int]] = []
    make(server).draft_many(donors(5), BRIEF, progress=lambda *a: seen.append(a))
    assert [done for done, _, _ in seen] == [1, 2, 3, 4, 5]
    assert seen[-1] == (5, 1, 5)
    assert {total for _, _, total in seen} == {5}


def test_cancel_keeps_what_is_done_and_starts_no_more(server: FakeModelServer) -> None:
    server.latency_s = 0.05
    seen: list[int] = []
    results = make(server, concurrency=2).draft_many(
        donors(20),
        BRIEF,
        progress=lambda done, _f, _t: seen.append(done),
        cancelled=lambda: len(seen) >= 3,
    )
    assert 3 <= len(results) < 20
    assert all(r.error is None for r in results)
    ids = [r.donor_id for r in results]
    assert ids == sorted(ids)
    assert len(server.chat_requests()) == len(results)


def test_requests_run_concurrently(server: FakeModelServer) -> None:
    drafter = make(server, concurrency=8)
    drafter.draft_many(donors(1), BRIEF)  # warm up: imports, first connection
    server.reset_log()
    server.latency_s = 0.3
    results = drafter.draft_many(donors(8), BRIEF)
    assert all(r.error is None for r in results)
    arrivals = sorted(r.at for r in server.chat_requests())
    # All eight were in flight at once: the last arrived before the first answer.
    assert len(arrivals) == 8 and arrivals[-1] - arrivals[0] < 0.3


def test_unchanged_rows_come_from_the_cache(
    server: FakeModelServer, services: Services
) -> None:
    first = make(server, services).draft_many(donors(3), BRIEF)
    assert len(server.chat_requests()) == 3
    server.reset_log()
    drafter = make(server, services)
    again = drafter.draft_many(donors(3), BRIEF)
    assert server.chat_requests() == []  # no model call on an unchanged rerun
    assert [r.body for r in again] == [r.body for r in first]
    assert all(r.cached for r in again) and drafter.usage.cached == 3
    changed = CampaignBrief(campaign="Spring Appeal", note="Thank them twice.")
    make(server, services).draft_many(donors(3), changed)
    assert len(server.chat_requests()) == 3  # a new brief is a new draft


def test_failed_rows_are_not_cached(
    server: FakeModelServer, services: Services
) -> None:
    server.scripted = {"Donor 1": "not json"}
    make(server, services).draft_many(donors(1), BRIEF)
    server.scripted = {}
    [result] = make(server, services).draft_many(donors(1), BRIEF)
    assert result.error is None and not result.cached
    assert len(server.chat_requests()) == 2


def test_connection_test_names_the_server(server: FakeModelServer) -> None:
    answer = make(server).test_connection()
    assert "answered in" in answer and "127.0.0.1" in answer
    server.fail_next(Failure(404, "model_not_found"))
    with pytest.raises(Exception, match="was not found"):
        make(server).test_connection()
