"""Sync: Sent folder -> CRM log, exactly once, through crashes and resyncs."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence

import pytest
from sqlalchemy import func, select

import lib.sync
from lib.crm.sandbox import SandboxCrm
from lib.db import utcnow
from lib.errors import AuthError, ConfigError, CrmError, MailboxError
from lib.exclusions import ExclusionList, load_exclusions, save_exclusions
from lib.models import CrmRecord, LogEntry, LogResult
from lib.schema import (
    crm_records_table,
    donors_table,
    drafts_table,
    log_queue_table,
    sent_mail_table,
    sync_cursors_table,
)
from lib.services import Services
from lib.sync import (
    pending_log_count,
    sync_all,
    sync_once,
    sync_status,
    unmatched_recipients,
)
from tests.fakes.sent_folder import ListMailbox


@pytest.fixture
def crm(services: Services) -> SandboxCrm:
    crm = SandboxCrm(services.engine)
    crm.upsert_records(
        [
            CrmRecord("recAnn", "Ann Lee", ("ann@example.org",)),
            CrmRecord("recBo", "Bo Chan", ("Bo@Example.org",)),
            CrmRecord("recCy", "Cy Diaz", ("cy@example.net",)),
            # A household: two records share one address.
            CrmRecord("recDon", "Don Whit", ("whitcombe@example.org",)),
            CrmRecord("recMaura", "Maura Whit", ("whitcombe@example.org",)),
        ]
    )
    return crm


def logged(crm: SandboxCrm) -> list[tuple[str, str, str]]:
    return sorted((e.rfc_message_id, e.record_id, e.recipient) for e in crm.read_log())


def queue(services: Services) -> list[tuple[str, str, str, str]]:
    q = log_queue_table.c
    with services.engine.connect() as conn:
        rows = conn.execute(
            select(q.rfc_message_id, q.recipient, q.record_id, q.status)
        ).all()
    return sorted(tuple(row) for row in rows)


def count(services: Services, table) -> int:
    with services.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar()


def test_two_syncs_log_each_message_once(services: Services, crm: SandboxCrm) -> None:
    box = ListMailbox()
    box.add(("Ann Lee <ann@example.org>",))
    box.add(("bo@example.org",))
    first = sync_once(services, box, crm)
    assert (first.read, first.new_emails, first.queued, first.logged) == (2, 2, 2, 2)
    assert first.ok and first.pending == 0
    second = sync_once(services, box, crm)
    assert (second.read, second.new_emails, second.logged) == (0, 0, 0)
    assert logged(crm) == [
        ("<m1.fundraising@our-charity.example.org>", "recAnn", "ann@example.org"),
        ("<m2.fundraising@our-charity.example.org>", "recBo", "bo@example.org"),
    ]
    assert box.reads[-1] == "2"  # the second pass resumed from the saved cursor


def test_to_cc_bcc_shared_address_and_case(services: Services, crm: SandboxCrm) -> None:
    box = ListMailbox()
    box.add(
        ("ANN@EXAMPLE.ORG",),
        cc=("Whitcombes <Whitcombe@example.org>",),
        bcc=("cy@EXAMPLE.net", "ann@example.org"),
    )
    report = sync_once(services, box, crm)
    assert report.queued == 4 and report.logged == 4
    rows = queue(services)
    assert [(r[1], r[2]) for r in rows] == [
        ("ann@example.org", "recAnn"),
        ("cy@example.net", "recCy"),
        ("whitcombe@example.org", "recDon"),
        ("whitcombe@example.org", "recMaura"),
    ]
    q = log_queue_table.c
    with services.engine.connect() as conn:
        kinds = dict(conn.execute(select(q.recipient, q.recipient_kind)).all())
    assert kinds == {
        "ann@example.org": "to",  # first kind wins over the repeat in Bcc
        "whitcombe@example.org": "cc",
        "cy@example.net": "bcc",
    }
    assert {e.record_id for e in crm.read_log()} == {
        "recAnn",
        "recCy",
        "recDon",
        "recMaura",
    }


def test_unmatched_listed_never_created(services: Services, crm: SandboxCrm) -> None:
    box = ListMailbox()
    box.add(("stranger@example.com", "ann@example.org"))
    box.add(("Stranger@example.com",))
    report = sync_once(services, box, crm)
    assert report.unmatched == 2 and report.logged == 1
    frame = unmatched_recipients(services.engine)
    assert frame["recipient"].tolist() == ["stranger@example.com"]
    assert frame["emails"].tolist() == [2]
    assert str(frame["last_sent_at"].dt.tz) == "UTC"
    assert crm.records_for_emails(["stranger@example.com"]) == {}
    assert pending_log_count(services.engine) == 0


def test_exclusion_list(services: Services, crm: SandboxCrm) -> None:
    settings = dataclasses.replace(
        services.settings,
        excluded_addresses=("bo@example.org",),
        excluded_domains=("vendor.example",),
    )
    svc = Services(settings=settings, engine=services.engine)
    save_exclusions(
        services.engine,
        ExclusionList(addresses=("Cy@Example.net",), domains=("*.board.example",)),
    )
    crm.upsert_records(
        [CrmRecord("recCol", "Colleague", ("pat@our-charity.example.org",))]
    )
    box = ListMailbox()
    box.add(
        (
            "ann@example.org",
            "bo@example.org",
            "cy@example.net",
            "printer@vendor.example",
            "chair@mail.board.example",
            "pat@our-charity.example.org",  # same domain as the sender
            "fundraising@our-charity.example.org",  # the sender itself
            "x@sub.vendor.example",  # plain domains match exactly
        )
    )
    report = sync_once(svc, box, crm)
    assert report.excluded == 6
    status = {r[1]: r[3] for r in queue(services)}
    assert status == {
        "ann@example.org": "logged",
        "bo@example.org": "excluded",
        "cy@example.net": "excluded",
        "printer@vendor.example": "excluded",
        "chair@mail.board.example": "excluded",
        "pat@our-charity.example.org": "excluded",
        "fundraising@our-charity.example.org": "excluded",
        "x@sub.vendor.example": "unmatched",
    }
    assert [e.record_id for e in crm.read_log()] == ["recAnn"]


def test_own_domain_can_be_included_and_gmail_never_excluded(
    services: Services, crm: SandboxCrm
) -> None:
    crm.upsert_records(
        [
            CrmRecord("recCol", "Colleague", ("pat@our-charity.example.org",)),
            CrmRecord("recGee", "Gee", ("gee@gmail.com",)),
        ]
    )
    save_exclusions(services.engine, ExclusionList(exclude_own_domain=False))
    box = ListMailbox()
    box.add(("pat@our-charity.example.org",))
    gmail_box = ListMailbox("director.personal@gmail.com")
    gmail_box.add(("gee@gmail.com", "director.personal@gmail.com"))
    sync_once(services, box, crm)
    sync_once(services, gmail_box, crm)
    status = {r[1]: r[3] for r in queue(services)}
    assert status == {
        "pat@our-charity.example.org": "logged",
        "gee@gmail.com": "logged",
        "director.personal@gmail.com": "excluded",
    }


def test_external_mail_and_missing_message_id(
    services: Services, crm: SandboxCrm
) -> None:
    box = ListMailbox()
    box.add(("ann@example.org",), rfc_message_id=None)  # typed straight in Gmail
    sync_once(services, box, crm)
    sync_once(services, box, crm)
    (entry,) = crm.read_log()
    assert entry.rfc_message_id == "mailbox:id0001"
    assert entry.record_id == "recAnn"


def add_draft(
    services: Services, rfc: str, to: str, record_id: str | None
) -> tuple[int, int]:
    now = utcnow()
    with services.engine.begin() as conn:
        donor_id = conn.execute(
            donors_table.insert().values(
                donor_key=f"key:{rfc}",
                record_id=record_id,
                name="Donor",
                email=to,
                emails=[to],
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]
        draft_id = conn.execute(
            drafts_table.insert().values(
                donor_id=donor_id,
                to_address=to,
                subject="Thank you",
                body="Dear friend",
                status="sent",
                rfc_message_id=rfc,
                created_at=now,
                updated_at=now,
            )
        ).inserted_primary_key[0]
    return donor_id, draft_id


def test_draft_carries_its_donors_record(services: Services, crm: SandboxCrm) -> None:
    box = ListMailbox()
    # Sent to the household address for Maura only: logged on her record alone.
    m1 = box.add(("whitcombe@example.org",), cc=("ann@example.org",))
    _donor, draft_id = add_draft(
        services, m1.rfc_message_id, "Whitcombe@example.org", "recMaura"
    )
    # The donor's address changed in the CRM since: the record id still holds.
    crm.upsert_records([CrmRecord("recOld", "Old", ("new@example.org",))])
    m2 = box.add(("old@example.org",))
    add_draft(services, m2.rfc_message_id, "old@example.org", "recOld")
    # The donor's record was deleted: fall back to matching by address.
    m3 = box.add(("bo@example.org",))
    add_draft(services, m3.rfc_message_id, "bo@example.org", "recDeleted")
    sync_once(services, box, crm)
    assert logged(crm) == sorted(
        [
            (m1.rfc_message_id, "recMaura", "whitcombe@example.org"),
            (m1.rfc_message_id, "recAnn", "ann@example.org"),
            (m2.rfc_message_id, "recOld", "old@example.org"),
            (m3.rfc_message_id, "recBo", "bo@example.org"),
        ]
    )
    with services.engine.connect() as conn:
        linked = conn.execute(
            select(sent_mail_table.c.draft_id).where(
                sent_mail_table.c.rfc_message_id == m1.rfc_message_id
            )
        ).scalar()
    assert linked == draft_id


class WritesThenFails:
    """A CRM whose write_log writes the entries and then fails (lost answer)."""

    def __init__(
        self, inner: SandboxCrm, error: Exception, *, write_first: bool = True
    ) -> None:
        self.inner = inner
        self.error = error
        self.write_first = write_first
        self.name = inner.name

    def records_for_emails(self, emails):  # noqa: ANN001, ANN201
        return self.inner.records_for_emails(emails)

    def record(self, record_id: str) -> CrmRecord | None:
        return self.inner.record(record_id)

    def write_log(self, entries: Sequence[LogEntry]) -> list[LogResult]:
        if self.write_first:
            self.inner.write_log(entries)
        raise self.error

    def read_log(self):  # noqa: ANN201
        return self.inner.read_log()


def test_crash_after_crm_write_does_not_duplicate(
    services: Services, crm: SandboxCrm
) -> None:
    box = ListMailbox()
    box.add(("ann@example.org", "whitcombe@example.org"))
    with pytest.raises(RuntimeError):
        sync_once(services, box, WritesThenFails(crm, RuntimeError("process killed")))
    assert len(crm.read_log()) == 3
    assert pending_log_count(services.engine) == 3  # answer lost: still owed
    report = sync_once(services, box, crm)
    assert report.logged == 3 and report.pending == 0
    assert len(crm.read_log()) == 3


def test_crm_error_keeps_rows_for_retry(services: Services, crm: SandboxCrm) -> None:
    box = ListMailbox()
    box.add(("ann@example.org",))
    failing = WritesThenFails(crm, CrmError("Airtable answered 503; try later."))
    report = sync_once(services, box, failing)
    assert report.failed == 1 and "503" in report.error
    q = log_queue_table.c
    with services.engine.connect() as conn:
        row = conn.execute(select(q.status, q.attempts, q.error)).one()
    assert (row.status, row.attempts) == ("error", 1) and "503" in row.error
    assert "503" in sync_status(services.engine)["last_error"].iloc[0]
    retry = sync_once(services, box, crm)
    assert retry.logged == 1 and retry.ok
    assert len(crm.read_log()) == 1
    assert sync_status(services.engine)["last_error"].isna().all()


def test_crash_before_cursor_save_rolls_back(
    services: Services, crm: SandboxCrm, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = ListMailbox()
    box.add(("ann@example.org",))
    box.add(("bo@example.org",))

    def crash(*_args: object) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(lib.sync, "_save_cursor", crash)
    with pytest.raises(RuntimeError):
        sync_once(services, box, crm)
    assert count(services, sent_mail_table) == 0
    assert count(services, log_queue_table) == 0
    assert crm.read_log() == []
    monkeypatch.undo()
    report = sync_once(services, box, crm)
    assert report.new_emails == 2 and report.logged == 2
    assert box.reads[:2] == [None, None]  # the crash never saved the cursor
    sync_once(services, box, crm)
    assert len(crm.read_log()) == 2


def test_crash_between_commit_and_flush(
    services: Services, crm: SandboxCrm, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = ListMailbox()
    box.add(("ann@example.org",))

    def crash(*_args: object, **_kw: object) -> None:
        raise RuntimeError("killed")

    monkeypatch.setattr(lib.sync, "flush_log_queue", crash)
    with pytest.raises(RuntimeError):
        sync_once(services, box, crm)
    monkeypatch.undo()
    assert pending_log_count(services.engine) == 1 and crm.read_log() == []
    report = sync_once(services, box, crm)
    assert (report.new_emails, report.logged) == (0, 1)
    sync_once(services, box, crm)
    assert len(crm.read_log()) == 1


def test_c05_expired_cursor_full_resync_logs_nothing_twice(
    services: Services, crm: SandboxCrm
) -> None:
    box = ListMailbox()
    box.add(("ann@example.org",))
    box.add(("bo@example.org",))
    sync_once(services, box, crm)
    box.add(("cy@example.net",))  # sent while the app was off
    box.expired = True
    report = sync_once(services, box, crm)
    assert report.full_resync and report.read == 3
    assert report.new_emails == 1 and report.logged == 1
    assert len(crm.read_log()) == 3
    c = sync_cursors_table.c
    with services.engine.connect() as conn:
        row = conn.execute(select(c.cursor, c.last_full_sync_at, c.last_error)).one()
    assert row.cursor == "3" and row.last_full_sync_at is not None
    assert row.last_error is None


def test_duplicate_in_one_page_and_paged_backlog(
    services: Services, crm: SandboxCrm
) -> None:
    box = ListMailbox()
    message = box.add(("ann@example.org",))
    box.sent.append(message)  # the same message listed twice
    for _ in range(5):
        box.add(("bo@example.org",))
    box.page_size = 2
    report = sync_once(services, box, crm)
    assert report.read == 7 and report.new_emails == 6
    assert len(crm.read_log()) == 6
    assert box.reads == [None, "2", "4", "6", "7"]


def test_deleted_record_is_error_others_logged(
    services: Services, crm: SandboxCrm
) -> None:
    box = ListMailbox()
    box.add(("ann@example.org", "bo@example.org"))
    down = WritesThenFails(crm, CrmError("CRM down"), write_first=False)
    sync_once(services, box, down)  # queued, nothing written
    assert crm.read_log() == []
    with services.engine.begin() as conn:  # someone deletes Bo's record meanwhile
        conn.execute(
            crm_records_table.delete().where(crm_records_table.c.record_id == "recBo")
        )
    report = sync_once(services, box, crm)
    assert (report.logged, report.failed) == (1, 1)
    again = sync_once(services, box, crm)
    assert again.failed == 1  # retried, still owed, never dropped
    q = log_queue_table.c
    with services.engine.connect() as conn:
        row = conn.execute(
            select(q.attempts, q.error).where(q.record_id == "recBo")
        ).one()
    assert row.attempts == 3 and "no longer exists" in row.error
    assert [e.record_id for e in crm.read_log()] == ["recAnn"]
    assert pending_log_count(services.engine) == 1


def test_sync_all_reports_failing_mailbox_and_syncs_others(
    services: Services, crm: SandboxCrm, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = ListMailbox()
    good.add(("ann@example.org",))
    bad = ListMailbox("events@our-charity.example.org")
    bad.fail = AuthError("Gmail for events@ is disconnected; reconnect it.")
    monkeypatch.setattr(services, "mailboxes", lambda: [bad, good])
    monkeypatch.setattr(services, "crm", lambda: crm)
    reports = sync_all(services)
    assert [r.ok for r in reports] == [False, True]
    assert "disconnected" in reports[0].error
    assert reports[1].logged == 1
    status = sync_status(services.engine).set_index("mailbox")
    assert "disconnected" in status.loc[bad.key, "last_error"]


def test_sync_all_flushes_even_when_no_mailbox_reads(
    services: Services, crm: SandboxCrm, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = ListMailbox()
    box.add(("ann@example.org",))
    failing = WritesThenFails(crm, CrmError("CRM down"))
    sync_once(services, box, failing)
    assert crm.read_log() and pending_log_count(services.engine) == 1
    crm_log_before = len(crm.read_log())
    box.fail = MailboxError("Gmail is unreachable; try again.")
    monkeypatch.setattr(services, "mailboxes", lambda: [box])
    monkeypatch.setattr(services, "crm", lambda: crm)
    reports = sync_all(services)
    assert not reports[0].ok
    assert pending_log_count(services.engine) == 0
    assert len(crm.read_log()) == crm_log_before == 1


def test_sync_all_setup_failure_is_reported(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_gmail() -> list:
        raise AuthError("No Gmail account is connected; open Connect.")

    monkeypatch.setattr(services, "mailboxes", no_gmail)
    (report,) = sync_all(services)
    assert not report.ok and "Connect" in report.error
    assert "error: No Gmail" in report.summary()


def test_concurrent_syncs_log_once(services: Services, crm: SandboxCrm) -> None:
    shared = ListMailbox()
    for i in range(30):
        shared.add(("ann@example.org", "whitcombe@example.org"), subject=f"n{i}")
    errors: list[BaseException] = []

    def run() -> None:
        box = ListMailbox()
        box.sent = list(shared.sent)
        try:
            sync_once(services, box, crm)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert len(crm.read_log()) == 90
    assert count(services, sent_mail_table) == 30
    assert count(services, log_queue_table) == 90


def test_real_sandbox_mailbox_end_to_end(services: Services, crm: SandboxCrm) -> None:
    from lib.mailbox.sandbox import SandboxMailbox
    from lib.models import OutgoingEmail

    box = SandboxMailbox(services.engine, services.settings.sandbox_sender)
    box.send(
        OutgoingEmail(
            sender=services.settings.sandbox_sender,
            to=("Ann Lee <Ann@Example.org>",),
            cc=("whitcombe@example.org",),
            bcc=("donor+gala@example.org",),
            subject="Gala de Otoño — ¡Gracias, José!",
            body_text="Thank you for coming.",
        )
    )
    box.add_external_sent(
        OutgoingEmail(
            sender=services.settings.sandbox_sender,
            to=("bo@example.org",),
            subject="Sent from Gmail directly",
            body_text="Hi Bo",
        )
    )
    report = sync_once(services, box, crm)
    assert report.new_emails == 2 and report.unmatched == 1
    assert {e.record_id for e in crm.read_log()} == {
        "recAnn",
        "recDon",
        "recMaura",
        "recBo",
    }
    subjects = {e.subject for e in crm.read_log()}
    assert "Gala de Otoño — ¡Gracias, José!" in subjects
    box_again = SandboxMailbox(services.engine, services.settings.sandbox_sender)
    assert sync_once(services, box_again, crm).new_emails == 0
    assert len(crm.read_log()) == 4


def test_draft_to_excluded_address_still_logged_on_its_donor(
    services: Services, crm: SandboxCrm
) -> None:
    # A board member who is also a donor, at the charity's own domain.
    crm.upsert_records([CrmRecord("recPat", "Pat", ("pat@our-charity.example.org",))])
    box = ListMailbox()
    m1 = box.add(("pat@our-charity.example.org",), cc=("lee@our-charity.example.org",))
    add_draft(services, m1.rfc_message_id, "pat@our-charity.example.org", "recPat")
    box.add(("pat@our-charity.example.org",))  # internal mail, not a donor email
    sync_once(services, box, crm)
    assert {r[1]: r[3] for r in queue(services) if r[0] == m1.rfc_message_id} == {
        "pat@our-charity.example.org": "logged",
        "lee@our-charity.example.org": "excluded",
    }
    assert [e.rfc_message_id for e in crm.read_log()] == [m1.rfc_message_id]


def test_exclusion_list_is_checked_and_normalised(services: Services) -> None:
    stored = save_exclusions(
        services.engine,
        ExclusionList(
            addresses=(" Chair@Board.Example ", "chair@board.example", ""),
            domains=("@Vendor.Example", "*.Board.Example"),
            exclude_own_domain=False,
        ),
    )
    assert stored == ExclusionList(
        ("chair@board.example",), ("vendor.example", "*.board.example"), False
    )
    assert load_exclusions(services.engine) == stored
    with pytest.raises(ConfigError, match="not an email address"):
        save_exclusions(services.engine, ExclusionList(addresses=("chair at board",)))
    with pytest.raises(ConfigError, match="not a domain"):
        save_exclusions(services.engine, ExclusionList(domains=("board example",)))
    assert load_exclusions(services.engine) == stored  # a refused edit changes nothing


def test_c05_real_sandbox_mailbox_refused_cursor(
    services: Services, crm: SandboxCrm
) -> None:
    from lib.mailbox.sandbox import SandboxMailbox
    from lib.models import OutgoingEmail

    box = SandboxMailbox(services.engine, services.settings.sandbox_sender)
    for to in ("ann@example.org", "bo@example.org"):
        box.send(
            OutgoingEmail(
                sender=services.settings.sandbox_sender,
                to=(to,),
                subject="Thanks",
                body_text="Thank you",
            )
        )
    sync_once(services, box, crm)
    with services.engine.begin() as conn:  # two weeks off: the cursor is refused
        conn.execute(sync_cursors_table.update().values(cursor="999999"))
    report = sync_once(services, box, crm)
    assert report.full_resync and report.read == 2 and report.new_emails == 0
    assert len(crm.read_log()) == 2
    status = sync_status(services.engine)
    assert status["last_full_sync_at"].notna().all()
    assert status["last_error"].isna().all()


def test_a_to_retyped_to_another_records_address_is_logged_on_that_record(
    services: Services, crm: SandboxCrm
) -> None:
    """Tester: a draft for one donor whose To was changed to an address another
    record holds was logged on the draft's donor, never on the address's owner."""
    box = ListMailbox()
    message = box.add(("ann@example.org",))
    add_draft(services, message.rfc_message_id, "ann@example.org", "recMaura")
    sync_once(services, box, crm)
    assert logged(crm) == [(message.rfc_message_id, "recAnn", "ann@example.org")]
