"""The whole sandbox flow, driven through the real pages with AppTest.

Import every export in ../shared/donor-formats on the donor page, draft for every
donor who may be emailed, approve and send on the Review & send page (with the
confirmation step), sync, and read the sync dashboard. Then check the promises:
one CRM log entry per (email, matched record), nothing to donors who may not be
emailed, every bad row in the import report, and a second sync changes nothing.
"""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

import pytest
from sqlalchemy import func, select
from streamlit.testing.v1 import AppTest

from lib.donors import list_donors
from lib.drafting.jobs import latest_job, wait_for_job
from lib.importing import read_donor_file
from lib.schema import crm_log_table, imports_table, sandbox_messages_table
from lib.services import open_services
from tests.conftest import donor_format_files

APP = Path(__file__).resolve().parent.parent / "app.py"


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch, isolated_environment: Path) -> AppTest:
    monkeypatch.setenv("STEWARD_BACKGROUND_SYNC", "0")
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not at.exception
    return at


def _button(at: AppTest, label_start: str):  # type: ignore[no-untyped-def]
    matches = [b for b in at.button if b.label.startswith(label_start)]
    assert matches, (
        f"no button starting {label_start!r}: {[b.label for b in at.button]}"
    )
    return matches[0]


def _import_on_page(at: AppTest, path: Path) -> None:
    at.file_uploader(key="donor_file").set_value(
        (path.name, path.read_bytes(), "text/csv")
    )
    at.run()
    assert not at.exception, path.name
    _button(at, "Import donors").click()
    at.run()
    assert not at.exception, path.name
    assert not at.error, [e.value for e in at.error]


def _sent_recipients(services) -> list[str]:  # type: ignore[no-untyped-def]
    with services.engine.connect() as conn:
        raws = conn.execute(select(sandbox_messages_table.c.raw)).scalars().all()
    found = []
    for raw in raws:
        msg = message_from_bytes(raw, policy=policy.default)
        for header in ("To", "Cc", "Bcc"):
            for address in msg.get_all(header) or []:
                found.extend(a.addr_spec.lower() for a in address.addresses)
    return found


def test_import_draft_approve_send_sync_on_every_export(app: AppTest) -> None:
    services = open_services()
    files = donor_format_files()
    assert len(files) >= 9

    # 1. Import every export through the donor page.
    expected_issue_rows: dict[str, set[int]] = {}
    for path in files:
        _import_on_page(app, path)
        preview = read_donor_file(path.read_bytes(), path.name)
        expected_issue_rows[path.name] = {
            i.row for i in [*preview.rejected, *preview.doubtful]
        }
    with services.engine.connect() as conn:
        reports = {
            row.source: row.report
            for row in conn.execute(
                select(imports_table.c.source, imports_table.c.report)
            )
        }
    for name, rows in expected_issue_rows.items():
        listed = reports[name]
        reported = {int(i["row"]) for i in [*listed["rejected"], *listed["doubtful"]]}
        assert rows <= reported, name
        assert all(i["reason"] for i in [*listed["rejected"], *listed["doubtful"]])
    # The totals row, the refund and the malformed address are named with a reason.
    bloomerang = reports["bloomerang_report_export.csv"]
    assert any(i["row"] == 1 for i in bloomerang["rejected"] + bloomerang["doubtful"])
    lgl = reports["littlegreenlight_constituents.csv"]
    assert any(
        i["row"] == 6 and "tad.greer" in i["reason"]
        for i in lgl["rejected"] + lgl["doubtful"]
    )

    donors = list_donors(services.engine)
    emailable = donors[donors["blocked_reason"].isna()]
    blocked = donors[donors["blocked_reason"].notna()]
    assert len(emailable) > 50 and len(blocked) > 5
    # Two records at one address (a household, an un-merged duplicate) get one email.
    inboxes = emailable["email"].str.lower().nunique()
    assert inboxes < len(emailable)
    never_email = {
        e
        for e in blocked["email"].dropna()
        if e not in set(emailable["email"].dropna())
    }
    assert {
        "siobhan.obw@example.org",  # DonorPerfect NO_EMAIL = Y
        "estelle.fournier@example.com",  # deceased
        "edwina.blakemore@example.com",  # Airtable Status = Do Not Contact
        "moe.oyelaran@example.net",  # Givebutter: unsubscribed
    } <= never_email

    # 2. Draft for every donor we may email (the toggle hides the others).
    app.checkbox(key="draft_all_shown").check()
    app.run()
    _button(app, "Draft emails").click()
    app.run()
    job = latest_job(services.engine)
    assert job is not None
    done = wait_for_job(services.engine, job.id, timeout_s=60)
    assert not done.running and done.failed == 0
    assert done.drafted == inboxes

    # 3. Approve all on Review & send, then send with the confirmation step.
    app.switch_page("pages/send.py")
    app.run()
    assert not app.exception
    app.checkbox(key="select_all_drafts").check()
    app.run()
    _button(app, "Approve").click()
    app.run()
    assert not app.exception
    _button(app, "Send ").click()
    app.run()
    confirm = _button(app, "Confirm: send")
    assert str(inboxes) in confirm.label  # the count is shown before sending
    warning = " ".join(w.value for w in app.warning)
    assert "about to send" in warning
    confirm.click()
    app.run()
    assert not app.exception
    assert any("Sent" in s.value for s in app.success)

    # Nothing went to a donor who may not be emailed; each emailable donor once.
    recipients = _sent_recipients(services)
    assert not never_email & set(recipients)
    assert len(recipients) == len(set(recipients)) == inboxes

    # 4. The send synced at once: one log entry per (email, matched record).
    with services.engine.connect() as conn:
        entries = conn.execute(
            select(crm_log_table.c.rfc_message_id, crm_log_table.c.record_id)
        ).all()
    assert len(entries) == len(set(entries))
    assert len({m for m, _ in entries}) == inboxes

    # 5. The dashboard shows both sides; Sync now logs nothing twice.
    app.switch_page("pages/dashboard.py")
    app.run()
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Emails in Sent"] == str(inboxes)
    assert metrics["Not yet logged"] == "0"
    _button(app, "Sync now").click()
    app.run()
    assert not app.exception
    with services.engine.connect() as conn:
        again = conn.execute(select(func.count()).select_from(crm_log_table)).scalar()
    assert again == len(entries)


def test_the_same_flow_with_airtable_as_the_crm(
    monkeypatch: pytest.MonkeyPatch, isolated_environment: Path
) -> None:
    """Import, draft, approve, send and sync through the pages with the CRM on
    the local Airtable server: each sent email is one row of the email log,
    linked to the Airtable record holding the address, and Sync now adds none."""
    from tests.fakes.airtable_seed import DONOR_FIELDS, activity_fields, fast_fake
    from tests.fakes.airtable_server import running

    monkeypatch.setenv("STEWARD_BACKGROUND_SYNC", "0")
    fake = fast_fake()
    with running(fake):
        base_id = fake.add_base("Development")
        donors_table_id = fake.add_table(base_id, "Donors", DONOR_FIELDS)
        fake.add_table(base_id, "Email log", activity_fields(donors_table_id))
        secrets = isolated_environment.parent / "secrets.toml"
        secrets.write_text(
            f'[airtable]\ntoken = "{fake.token}"\nbase_id = "{base_id}"\n'
            'donors_table = "Donors"\nactivity_table = "Email log"\n'
            f'endpoint_url = "{fake.url}"\n',
            encoding="utf-8",
        )
        monkeypatch.setenv("STEWARD_SECRETS", str(secrets))
        app = AppTest.from_file(str(APP), default_timeout=120)
        app.run()
        assert not app.exception
        names = ("donorperfect_gifts.csv", "littlegreenlight_constituents.csv")
        for path in (p for p in donor_format_files() if p.name in names):
            _import_on_page(app, path)
        services = open_services()
        assert not services.uses_local_crm
        donors = list_donors(services.engine)
        emailable = donors[donors["blocked_reason"].isna()]
        addresses = sorted(set(emailable["email"].str.lower()))
        assert len(addresses) > 15
        record_ids = fake.add_records(
            base_id, "Donors", [{"Name": a, "Email": a.upper()} for a in addresses]
        )
        record_of = dict(zip(addresses, record_ids, strict=True))

        app.checkbox(key="draft_all_shown").check()
        app.run()
        _button(app, "Draft emails").click()
        app.run()
        job = latest_job(services.engine)
        assert job is not None
        assert wait_for_job(services.engine, job.id, timeout_s=60).failed == 0
        app.switch_page("pages/send.py")
        app.run()
        app.checkbox(key="select_all_drafts").check()
        app.run()
        _button(app, "Approve").click()
        app.run()
        _button(app, "Send ").click()
        app.run()
        _button(app, "Confirm: send").click()
        app.run()
        assert not app.exception

        rows = fake.records(base_id, "Email log")
        linked = sorted((r["fields"]["Recipient"], r["fields"]["Donor"]) for r in rows)
        assert linked == sorted((a, [record_of[a]]) for a in addresses)
        assert len({r["fields"]["Log Key"] for r in rows}) == len(rows)

        app.switch_page("pages/dashboard.py")
        app.run()
        _button(app, "Sync now").click()
        app.run()
        assert not app.exception
        assert len(fake.records(base_id, "Email log")) == len(rows)
        assert fake.unexpected == []
