"""`python -m lib sync`: one pass over every mailbox, with a summary."""

from __future__ import annotations

import pytest

from lib.cli import main
from lib.crm.sandbox import SandboxCrm
from lib.errors import AuthError
from lib.mailbox.sandbox import SandboxMailbox
from lib.models import CrmRecord, OutgoingEmail
from lib.services import Services, open_services
from tests.fakes.sent_folder import ListMailbox


def test_sync_once_in_sandbox_mode(
    services: Services, capsys: pytest.CaptureFixture[str]
) -> None:
    crm = SandboxCrm(services.engine)
    crm.upsert_records([CrmRecord("recAnn", "Ann", ("ann@example.org",))])
    box = SandboxMailbox(services.engine, services.settings.sandbox_sender)
    box.send(
        OutgoingEmail(
            sender=services.settings.sandbox_sender,
            to=("ann@example.org", "stranger@example.com"),
            subject="Thank you",
            body_text="Dear Ann",
        )
    )
    assert main(["sync"]) == 0
    out = capsys.readouterr().out
    assert "1 new of 1 read" in out and "logged 1" in out and "unmatched 1" in out
    assert len(crm.read_log()) == 1
    assert main(["sync"]) == 0
    assert "0 new of 0 read" in capsys.readouterr().out
    assert len(crm.read_log()) == 1


def test_failing_mailbox_exit_code(
    services: Services,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bad = ListMailbox()
    bad.fail = AuthError("Gmail access was withdrawn; reconnect Gmail.")
    monkeypatch.setattr(Services, "mailboxes", lambda self: [bad])
    assert main(["sync"]) == 1
    assert "reconnect Gmail" in capsys.readouterr().out
    assert open_services().settings.database_url == services.settings.database_url


def test_watch_until_ctrl_c(
    services: Services,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box = ListMailbox()
    box.add(("ann@example.org",))
    monkeypatch.setattr(Services, "mailboxes", lambda self: [box])
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr("time.sleep", sleep)
    assert main(["sync", "--watch", "--interval", "7"]) == 0
    out = capsys.readouterr().out
    assert out.count("test:fundraising@our-charity.example.org") == 2
    assert "sync stopped" in out
    assert waits == [7.0, 7.0]
    assert box.reads[0] is None and box.reads[-1] == "1"
