"""AppTest of the "Draft emails" panel and the Connect page's model section, each
driven through a tiny script: the template drafter in sandbox mode, and the model
drafter against the local fake server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

from lib.app_settings import get_setting
from lib.drafting.jobs import job_progress, latest_job, wait_for_job
from lib.drafting.model_settings import model_config, save_model_settings
from lib.drafts import list_drafts
from lib.services import Services
from pages._draft_panel import BRIEF_SETTING
from tests.fakes.model_server import FakeModelServer
from tests.test_drafts import add_donor

RUN_TIMEOUT_S = 20


def panel_script(donor_ids: list[int]) -> None:
    from lib.services import open_services
    from pages._draft_panel import render

    render(open_services(), donor_ids)


def connect_script() -> None:
    from lib.services import open_services
    from pages._connect_model import render

    render(open_services())


@pytest.fixture
def server() -> Iterator[FakeModelServer]:
    with FakeModelServer() as fake:
        yield fake


def panel(donor_ids: list[int]) -> AppTest:
    at = AppTest.from_function(
        panel_script, args=(donor_ids,), default_timeout=RUN_TIMEOUT_S
    )
    return at.run()


def by_label(widgets, label: str):  # noqa: ANN001, ANN201 - AppTest element lists
    return next(w for w in widgets if w.label.startswith(label))


def shown(element) -> str:  # noqa: ANN001 - the page escapes Markdown
    return str(element.value).replace("\\", "")


def finish(services: Services, at: AppTest) -> AppTest:
    job = latest_job(services.engine)
    assert job is not None
    wait_for_job(services.engine, job.id, RUN_TIMEOUT_S)
    return at.run()


def test_template_drafts_from_the_panel(services: Services) -> None:
    ids = [add_donor(services.engine, n).id for n in ("Ann Lee", "Bo Dee")]
    at = panel(ids)
    assert not at.exception
    assert "mail-merge template" in shown(at.caption[0])
    by_label(at.text_input, "Campaign").input("Spring Appeal")
    by_label(at.text_area, "Signature").input("Ana Ruiz")
    assert by_label(at.text_area, "Template").value.startswith("Subject:")
    by_label(at.button, "Draft emails (2)").click()
    at = finish(services, at.run())
    assert not at.exception
    assert "2 drafted, 0 failed" in shown(at.success[0])
    drafts = list_drafts(services.engine)
    assert sorted(drafts["donor_id"]) == sorted(ids)
    assert set(drafts["status"]) == {"draft"}
    assert all("Spring Appeal" in s for s in drafts["subject"])
    # The brief is kept for next time, in the database.
    assert get_setting(services.engine, BRIEF_SETTING)["campaign"] == "Spring Appeal"
    again = panel(ids)
    assert by_label(again.text_input, "Campaign").value == "Spring Appeal"


def test_model_drafts_with_progress_usage_and_review(
    services: Services, server: FakeModelServer
) -> None:
    server.latency_s = 0.15
    wrong = "Dear Cy,\nPlease give $1M today."
    server.scripted = {"Cy Fox": {"subject": "Hi", "body": wrong, "facts": []}}
    values = {"base_url": server.base_url, "concurrency": 1}
    save_model_settings(services, values, "sk-test")
    ids = [add_donor(services.engine, n).id for n in ("Ann Lee", "Bo Dee", "Cy Fox")]
    at = panel(ids)
    assert "gpt-4o-mini at 127.0.0.1" in shown(at.caption[0])
    assert not [w for w in at.text_area if w.label.startswith("Template")]
    by_label(at.button, "Draft emails (3)").click()
    at.run()
    [bar] = at.get("progress")
    assert "of 3 done" in bar.text
    assert by_label(at.button, "Cancel") is not None
    at = finish(services, at)
    assert not at.exception
    assert "3 drafted, 0 failed" in shown(at.success[0])
    usage = " ".join(shown(c) for c in at.caption)
    assert "3 model calls" in usage and "estimated cost $" in usage
    [rows] = at.dataframe
    assert list(rows.value["status"]) == ["needs_review"]
    assert "$1M" in rows.value["review_issues"].iloc[0]


def test_cancel_from_the_panel_keeps_what_is_done(
    services: Services, server: FakeModelServer
) -> None:
    server.latency_s = 0.1
    save_model_settings(services, {"base_url": server.base_url, "concurrency": 1}, "k")
    ids = [add_donor(services.engine, f"Donor{n} Lee").id for n in range(12)]
    at = panel(ids)
    by_label(at.button, "Draft emails (12)").click()
    at.run()
    job = latest_job(services.engine)
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while job is not None and job_progress(services.engine, job.id).done < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    by_label(at.button, "Cancel").click()
    at = finish(services, at.run())
    job = latest_job(services.engine)
    assert job is not None and job.status == "cancelled"
    assert 0 < len(list_drafts(services.engine)) == job.done < 12
    assert "cancelled" in shown(at.success[0])


def test_connect_page_stores_the_key_and_never_shows_it(
    services: Services, server: FakeModelServer
) -> None:
    key = "sk-connect-page-secret-42"
    at = AppTest.from_function(connect_script, default_timeout=RUN_TIMEOUT_S).run()
    assert "No model configured" in shown(at.caption[0])
    by_label(at.text_input, "Base URL").input(server.base_url)
    by_label(at.text_input, "API key").input(key)
    by_label(at.button, "Save model settings").click()
    at.run()
    config = model_config(services)
    assert config is not None and config.api_key == key
    assert config.base_url == server.base_url
    on_page = [w.value for w in at.text_input] + [t.value for t in at.text]
    assert all(key not in str(value) for value in on_page)
    assert by_label(at.text_input, "API key").value == ""
    by_label(at.button, "Test connection").click()
    at.run()
    assert "Connected:" in shown(at.success[0])
    assert [r.authorization for r in server.requests] == [f"Bearer {key}"]
