"""Every page through AppTest in sandbox mode: it renders, says it is a sandbox,
and its main actions work (edit, approve, cancel a send, log mail sent outside
Steward). Donor values never reach a Markdown element unescaped."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from lib.drafting.base import CampaignBrief
from lib.drafting.run import draft_for_donors
from lib.drafts import get_draft, list_drafts
from lib.models import DraftStatus
from lib.schema import crm_log_table, sandbox_messages_table
from lib.services import Services, open_services
from tests.test_drafts import add_donor

APP = Path(__file__).resolve().parent.parent / "app.py"
PAGES = ["pages/donors.py", "pages/send.py", "pages/dashboard.py", "pages/connect.py"]
HOSTILE_NAME = "**Bold** [click](http://evil.example) <b>x</b> $x$ :red[alarm]"


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, isolated_environment: Path) -> AppTest:
    monkeypatch.setenv("STEWARD_BACKGROUND_SYNC", "0")
    return AppTest.from_file(str(APP), default_timeout=60)


def _markdown_texts(at: AppTest) -> list[str]:
    texts = [m.value for m in at.markdown]
    for root in (at, at.sidebar):
        for kind in (root.info, root.warning, root.error, root.success, root.caption):
            texts += [element.value for element in kind]
    return texts


def _open(at: AppTest, page: str) -> AppTest:
    at.switch_page(page)
    at.run()
    assert not at.exception, at.exception
    return at


def _drafted(services: Services, name: str = "Ann Lee") -> int:
    donor = add_donor(services.engine, name, email="ann.lee@example.org")
    assert donor.id is not None
    run = draft_for_donors(services, [donor.id], CampaignBrief(campaign="Spring"))
    return run.draft_ids[0]


@pytest.mark.parametrize("page", PAGES)
def test_each_page_renders_empty_in_sandbox(app: AppTest, page: str) -> None:
    app.run()
    _open(app, page)
    assert any("Sandbox mode" in text for text in _markdown_texts(app))


def test_connect_page_lists_the_gmail_permissions(app: AppTest) -> None:
    app.run()
    _open(app, "pages/connect.py")
    tables = [str(t.value.to_dict()) for t in app.table]
    everything = " ".join(_markdown_texts(app) + tables)
    for scope in ("gmail.send", "gmail.readonly"):
        assert scope in everything
    assert "administrator" in everything.lower()


def test_editing_a_draft_is_saved_and_survives_a_new_session(app: AppTest) -> None:
    services = open_services()
    draft_id = _drafted(services)
    app.run()
    _open(app, "pages/send.py")
    subject = [t for t in app.text_input if t.label == "Subject"][0]
    subject.set_value("A new subject typed by a person")
    body = [t for t in app.text_area if t.label == "Body"][0]
    body.set_value("Dear Ann,\n\nThank you.\n")
    [b for b in app.button if b.label == "Save changes"][0].click()
    app.run()
    assert not app.exception
    fresh = AppTest.from_file(str(APP), default_timeout=60)
    fresh.run()
    _open(fresh, "pages/send.py")
    assert get_draft(services.engine, draft_id).subject == (
        "A new subject typed by a person"
    )
    shown = [t.value for t in fresh.text_input if t.label == "Subject"]
    assert shown == ["A new subject typed by a person"]


def test_cancel_on_the_confirmation_sends_nothing(app: AppTest) -> None:
    services = open_services()
    draft_id = _drafted(services)
    app.run()
    _open(app, "pages/send.py")
    app.checkbox(key="select_all_drafts").check()
    app.run()
    [b for b in app.button if b.label.startswith("Approve")][0].click()
    app.run()
    [b for b in app.button if b.label.startswith("Send 1 approved")][0].click()
    app.run()
    assert any(b.label.startswith("Confirm: send 1") for b in app.button)
    [b for b in app.button if b.label == "Cancel"][0].click()
    app.run()
    assert not any(b.label.startswith("Confirm") for b in app.button)
    with services.engine.connect() as conn:
        sent = conn.execute(select(func.count()).select_from(sandbox_messages_table))
        assert sent.scalar() == 0
    assert get_draft(services.engine, draft_id).status == DraftStatus.APPROVED


def test_needs_review_draft_cannot_be_approved_until_overridden(
    app: AppTest,
) -> None:
    services = open_services()
    donor = add_donor(services.engine, "Ann Lee", email="ann.lee@example.org")
    assert donor.id is not None

    def review(_donor, _subject, _body):  # type: ignore[no-untyped-def]
        return ["$1,000,000 (amount not in the donor's record or the brief)"]

    run = draft_for_donors(services, [donor.id], CampaignBrief(), review=review)
    draft_id = run.draft_ids[0]
    app.run()
    _open(app, "pages/send.py")
    app.checkbox(key="select_all_drafts").check()
    app.run()
    [b for b in app.button if b.label.startswith("Approve")][0].click()
    app.run()
    assert get_draft(services.engine, draft_id).status == DraftStatus.NEEDS_REVIEW
    assert any("$1,000,000" in t.value for t in app.text)
    app.checkbox(key=f"override_{draft_id}").check()
    app.run()
    [b for b in app.button if b.label.startswith("Approve")][0].click()
    app.run()
    assert get_draft(services.engine, draft_id).status == DraftStatus.APPROVED


def test_mail_sent_outside_steward_is_logged_from_the_dashboard(
    app: AppTest,
) -> None:
    services = open_services()
    add_donor(services.engine, "Ann Lee", email="ann.lee@example.org")
    from lib.crm.sandbox import SandboxCrm
    from lib.models import CrmRecord

    SandboxCrm(services.engine).upsert_records(
        [CrmRecord("rec_ann", "Ann Lee", ("ann.lee@example.org",))]
    )
    app.run()
    _open(app, "pages/dashboard.py")
    app.text_input[0].set_value("Ann.Lee@example.org")
    [b for b in app.button if b.label == "Add to Sent"][0].click()
    app.run()
    [b for b in app.button if b.label == "Sync now"][0].click()
    app.run()
    assert not app.exception
    with services.engine.connect() as conn:
        logged = conn.execute(select(crm_log_table.c.record_id)).scalars().all()
    assert logged == ["rec_ann"]
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Log entries on records"] == "1"


def test_donor_values_are_never_rendered_as_markdown(app: AppTest) -> None:
    services = open_services()
    donor = add_donor(services.engine, HOSTILE_NAME, email="ann.lee@example.org")
    assert donor.id is not None
    draft_for_donors(services, [donor.id], CampaignBrief())
    assert not list_drafts(services.engine).empty
    app.run()
    for page in PAGES:
        _open(app, page)
        for text in _markdown_texts(app):
            assert "**Bold**" not in text and "[click](" not in text, page
            assert ":red[" not in text, page
