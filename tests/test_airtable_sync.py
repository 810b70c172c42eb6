"""Airtable as the CRM end to end: configured from secrets or the Connect page's
choices, and sync logging Sent mail on Airtable records exactly once."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import update

from lib.airtable_config import (
    TOKEN_SECRET,
    load_airtable_config,
    save_choices,
    store_token,
)
from lib.airtable_donors import DonorMapping
from lib.crm.airtable import AirtableCrm, open_airtable_crm
from lib.crm.sandbox import SandboxCrm
from lib.mailbox.sandbox import SandboxMailbox
from lib.models import OutgoingEmail
from lib.schema import log_queue_table
from lib.services import Services, open_services
from lib.settings import settings_from_mapping
from lib.sync import sync_once
from tests.fakes.airtable_seed import Seeded, crm_for, fast_fake, seed
from tests.fakes.airtable_server import running


@pytest.fixture
def seeded() -> Iterator[Seeded]:
    fake = fast_fake()
    with running(fake):
        yield seed(
            fake,
            [
                {"Name": "Ann Lee", "Email": "Ann@Example.org"},
                {"Name": "Don Whit", "Email": "whitcombe@example.org"},
                {"Name": "Maura Whit", "Email": "whitcombe@example.org"},
                {"Name": "Bo Chan", "Work Email": "bo@example.org"},
            ],
        )
        assert fake.unexpected == []


def test_nothing_configured_means_the_local_crm(services: Services) -> None:
    assert open_airtable_crm(services) is None
    assert isinstance(services.crm(), SandboxCrm)


def test_token_alone_is_not_enough(services: Services) -> None:
    store_token(services, "patSOMETHING.1234")
    assert load_airtable_config(services) is None  # no base or table chosen yet


def test_configured_from_secrets(seeded: Seeded, isolated_environment: object) -> None:
    settings = settings_from_mapping(
        {
            "airtable": {
                "token": seeded.fake.token,
                "base_id": seeded.base_id,
                "donors_table": "Donors",
                "activity_table": "Email log",
                "endpoint_url": seeded.fake.url,
            }
        }
    )
    services = open_services(settings)
    crm = services.crm()
    assert isinstance(crm, AirtableCrm)
    assert not services.uses_local_crm
    assert crm.config.token_from_secrets
    assert services.vault.get(TOKEN_SECRET) is None  # secrets are not copied
    assert "ann@example.org" in crm.records_for_emails(["ann@example.org"])


def test_configured_on_the_connect_page(seeded: Seeded, services: Services) -> None:
    store_token(services, seeded.fake.token)
    save_choices(
        services,
        base_id=seeded.base_id,
        base_name="Development",
        donors_table="Donors",
        activity_table="Email log",
        donor_mapping=DonorMapping(full_name="Name", emails=("Email",)).to_dict(),
    )
    config = load_airtable_config(services)
    assert config is not None and config.base_name == "Development"
    assert config.donor_mapping == DonorMapping(full_name="Name", emails=("Email",))
    assert config.endpoint_url == "https://api.airtable.com"  # only secrets move it
    crm = open_airtable_crm(services)
    assert crm is not None and crm.name == "Airtable (base Development)"
    assert repr(config).find(seeded.fake.token) == -1  # never in a repr


def send(box: SandboxMailbox, to: str, subject: str) -> None:
    box.send(
        OutgoingEmail(sender=box.sender, to=(to,), subject=subject, body_text="Thanks")
    )


def test_sync_logs_sent_mail_on_airtable_records_once(
    seeded: Seeded, services: Services
) -> None:
    crm = crm_for(seeded)
    box = SandboxMailbox(services.engine, services.settings.sandbox_sender)
    send(box, "ANN@example.org", "Thank you, Ann")
    send(box, "whitcombe@example.org", "Thank you both")  # a household: two records
    send(box, "bo@example.org", "Hello Bo")
    send(box, "stranger@example.org", "Not a donor")
    first = sync_once(services, box, crm)
    assert (first.logged, first.unmatched, first.failed) == (4, 1, 0)
    rows = seeded.fake.records(seeded.base_id, "Email log")
    assert sorted(r["fields"]["Donor"][0] for r in rows) == sorted(seeded.donor_ids)

    send(box, "ann@example.org", "A second note")
    second = sync_once(services, box, crm_for(seeded))  # the next pass
    assert (second.new_emails, second.logged) == (1, 1)

    # A crash after Airtable took the rows but before Steward marked them: the
    # next pass writes everything again, and Airtable still holds one row each.
    with services.engine.begin() as conn:
        conn.execute(update(log_queue_table).values(status="pending"))
    third = sync_once(services, box, crm_for(seeded))
    assert third.logged == 5
    assert len(seeded.fake.records(seeded.base_id, "Email log")) == 5
    logged = crm_for(seeded).read_log()
    assert {e.subject for e in logged} == {
        "Thank you, Ann",
        "Thank you both",
        "Hello Bo",
        "A second note",
    }


def test_tracked_opens_by_people_reach_the_airtable_log(
    seeded: Seeded, services: Services
) -> None:
    from datetime import timedelta

    from lib.crm.airtable import push_engagement
    from lib.tracking import record_open

    crm = crm_for(seeded)
    box = SandboxMailbox(services.engine, services.settings.sandbox_sender)
    send(box, "ann@example.org", "Thank you, Ann")
    sync_once(services, box, crm)
    logged = crm.read_log()[0]
    person = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/133.0"
    record_open(
        services.engine,
        logged.rfc_message_id,
        person,
        logged.sent_at + timedelta(hours=2),
    )
    proxy = "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"
    record_open(
        services.engine,
        logged.rfc_message_id,
        proxy,
        logged.sent_at + timedelta(hours=3),
    )
    assert push_engagement(services, crm) == 1
    again = crm_for(seeded).read_log()[0]
    assert (again.opens, again.clicks) == (1, 0)  # the proxy fetch is not a person
    assert push_engagement(services, crm) == 0  # nothing changed since
