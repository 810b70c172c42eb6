"""AppTest of the Connect page's Airtable section and the donor list's Airtable
panel, against the local Airtable: the token is stored encrypted and never shown,
the base and tables come from the metadata API, missing fields can be created."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from lib.airtable_config import (
    TOKEN_SECRET,
    load_airtable_config,
    save_choices,
    saved_choices,
)
from lib.airtable_donors import DonorMapping
from lib.services import Services
from tests.fakes.airtable_seed import Seeded, activity_fields, fast_fake, seed
from tests.fakes.airtable_server import running

RUN_TIMEOUT_S = 20
APP = Path(__file__).resolve().parent.parent / "app.py"


def connect_script() -> None:
    from lib.services import open_services
    from pages._connect_airtable import render

    render(open_services())


def donors_script() -> None:
    from lib.services import open_services
    from pages._donors_airtable import render

    render(open_services())


@pytest.fixture
def seeded() -> Iterator[Seeded]:
    fake = fast_fake()
    with running(fake):
        yield seed(
            fake,
            [{"Name": "Bad Address", "Email": "not-an-address"}],
            count=120,
            with_log=False,
        )
        assert fake.unexpected == []


def page(script, secrets: dict | None = None) -> AppTest:  # noqa: ANN001
    at = AppTest.from_function(script, default_timeout=RUN_TIMEOUT_S)
    for key, value in (secrets or {}).items():
        at.secrets[key] = value
    return at.run()


def everything_shown(at: AppTest) -> str:
    parts = []
    for kind in ("text", "caption", "markdown", "error", "warning", "success", "info"):
        parts.extend(str(e.value) for e in getattr(at, kind))
    parts.extend(str(w.value) for w in at.text_input)
    return "\n".join(parts)


def test_token_entered_once_is_stored_encrypted_and_never_shown(
    seeded: Seeded, services: Services
) -> None:
    save_choices(services, endpoint_url=seeded.fake.url)
    at = page(connect_script)
    assert not at.exception
    assert "No Airtable connected" in everything_shown(at)

    at.text_input[0].input("patWRONG.0000")
    at.button[0].click()
    at = at.run()
    assert "did not accept the access token" in everything_shown(at).replace("\\", "")
    assert services.vault.get(TOKEN_SECRET) is None

    at.text_input[0].input(seeded.fake.token)
    at.button[0].click()
    at = at.run()
    assert not at.exception
    assert services.vault.get(TOKEN_SECRET) == seeded.fake.token
    shown = everything_shown(at)
    assert seeded.fake.token not in shown
    assert f"••••{seeded.fake.token[-4:]}" in shown
    assert at.selectbox(key="airtable_base").value == seeded.base_id
    assert at.selectbox(key="airtable_donors_table").value == "Donors"
    config = load_airtable_config(services)
    assert config is not None and config.base_id == seeded.base_id


def test_missing_log_table_is_shown_and_created(
    seeded: Seeded, services: Services
) -> None:
    secrets = {
        "airtable": {
            "token": seeded.fake.token,
            "base_id": seeded.base_id,
            "donors_table": "Donors",
            "endpoint_url": seeded.fake.url,
        }
    }
    at = page(connect_script, secrets)
    assert not at.exception
    shown = everything_shown(at).replace("\\", "")
    assert "from secrets.toml" in shown and seeded.fake.token not in shown
    assert 'no table "Email log"' in shown
    assert not [b for b in at.button if b.key == "airtable_forget"]  # secrets rule

    at.button(key="airtable_create").click()
    at = at.run()
    assert not at.exception
    assert seeded.fake.table(seeded.base_id, "Email log").field("Log Key") is not None
    assert "ready" in everything_shown(at)

    at.button(key="airtable_mapping_save").click()
    at = at.run()
    saved = saved_choices(services)["donor_mapping"]  # the token is in secrets
    assert DonorMapping.from_dict(saved).emails == ("Email", "Work Email")


def test_donor_panel_loads_donors_with_record_ids(
    seeded: Seeded, services: Services
) -> None:
    donors = pytest.importorskip("lib.donors")  # the donor store (another issue)
    secrets = {
        "airtable": {
            "token": seeded.fake.token,
            "base_id": seeded.base_id,
            "donors_table": "Donors",
            "endpoint_url": seeded.fake.url,
        }
    }
    at = page(donors_script, secrets)
    assert not at.exception
    at.button(key="airtable_load").click()
    at = at.run()
    assert not at.exception
    listed = donors.list_donors(services.engine)
    assert len(listed) == 121
    assert set(listed["record_id"]) == set(seeded.donor_ids)
    assert "not-an-address" in everything_shown(at)


def test_no_panel_without_airtable(services: Services) -> None:
    at = page(donors_script)
    assert not at.exception
    assert not at.button and not at.expander


def test_app_end_to_end_with_airtable_as_the_crm(
    seeded: Seeded, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The whole app on the local Airtable: load donors, a sent email to one of
    them, "Sync now" on the dashboard, and the email is on the donor's record."""
    pytest.importorskip("lib.donors")
    from lib.mailbox.sandbox import SandboxMailbox
    from lib.models import OutgoingEmail

    monkeypatch.setenv("STEWARD_BACKGROUND_SYNC", "0")
    fake = seeded.fake
    fake.add_table(
        seeded.base_id,
        "Email log",
        activity_fields(seeded.donors_table_id),
    )
    at = AppTest.from_file(str(APP), default_timeout=RUN_TIMEOUT_S)
    at.secrets["airtable"] = {
        "token": fake.token,
        "base_id": seeded.base_id,
        "donors_table": "Donors",
        "endpoint_url": fake.url,
    }
    at.run()
    assert not at.exception
    at.button(key="airtable_load").click()
    at.run()
    assert not at.exception
    assert "121 donors" in everything_shown(at)

    box = SandboxMailbox(services.engine, services.settings.sandbox_sender)
    box.send(
        OutgoingEmail(
            sender=box.sender,
            to=("Donor005@example.org",),
            subject="Thank you",
            body_text="Your gift matters.",
        )
    )
    at.switch_page("pages/dashboard.py")
    at.run()
    assert not at.exception
    assert f"CRM: Airtable (base {seeded.base_id})" in everything_shown(at)
    next(b for b in at.button if b.label == "Sync now").click()
    at.run()
    assert not at.exception
    rows = fake.records(seeded.base_id, "Email log")
    assert [r["fields"]["Donor"] for r in rows] == [[seeded.donor_ids[6]]]
    assert rows[0]["fields"]["Subject"] == "Thank you"
