"""The sync dashboard: Sent compared with what the CRM actually holds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import update

from lib.crm.sandbox import SandboxCrm
from lib.dashboard import lag_series, sync_counts, sync_table
from lib.errors import CrmError
from lib.log_queue import requeue_entries
from lib.models import CrmRecord
from lib.schema import crm_log_table, crm_records_table
from lib.services import Services
from lib.sync import sync_once
from lib.tracking import record_click, record_open
from tests.fakes.sent_folder import START, ListMailbox

FIREFOX = "Mozilla/5.0 (Windows NT 10.0; rv:128.0) Gecko/20100101 Firefox/128.0"


class Unreachable(SandboxCrm):
    """The local CRM with writes failing, as if the service were down."""

    def write_log(self, entries):  # noqa: ANN001, ANN201
        raise CrmError("The CRM is unreachable; entries stay queued.")


@pytest.fixture
def scenario(services: Services) -> tuple[SandboxCrm, ListMailbox]:
    crm = SandboxCrm(services.engine)
    crm.upsert_records(
        [
            CrmRecord("recAnn", "Ann", ("ann@example.org",)),
            CrmRecord("recBo", "Bo", ("bo@example.org",)),
            CrmRecord("recCy", "Cy", ("cy@example.org",)),
        ]
    )
    box = ListMailbox()
    box.add(("ann@example.org", "nobody@example.com"))  # m1: logged + unmatched
    box.add(("bo@example.org", "pat@our-charity.example.org"))  # m2: + excluded
    sync_once(services, box, crm)
    # m3 is queued while the CRM is down: "error" until the next pass.
    box.add(("cy@example.org",))
    sync_once(services, box, Unreachable(services.engine))
    # Someone deleted m2's entry in the CRM: the check shows it as not yet logged.
    with services.engine.begin() as conn:
        conn.execute(crm_log_table.delete().where(crm_log_table.c.record_id == "recBo"))
        # Fix the CRM's log time of m1 so the lag is known exactly.
        conn.execute(
            update(crm_log_table).values(
                logged_at=START + timedelta(minutes=1, seconds=42)
            )
        )
    return crm, box


def test_sync_table_rows_and_statuses(
    services: Services, scenario: tuple[SandboxCrm, ListMailbox]
) -> None:
    crm, _box = scenario
    table = sync_table(services.engine, crm.read_log())
    view = table.set_index("recipient")
    assert dict(view["status"].astype(str)) == {
        "ann@example.org": "logged",
        "nobody@example.com": "no matching record",
        "bo@example.org": "not yet logged",
        "pat@our-charity.example.org": "excluded",
        "cy@example.org": "error",
    }
    assert dict(view["record"]) == {
        "ann@example.org": "recAnn",
        "nobody@example.com": "no matching record",
        "bo@example.org": "recBo",
        "pat@our-charity.example.org": "excluded",
        "cy@example.org": "recCy",
    }
    ann = view.loc["ann@example.org"]
    assert ann["sent_at"] == pd.Timestamp(START + timedelta(minutes=1))
    assert ann["logged_at"] == pd.Timestamp(START + timedelta(minutes=1, seconds=42))
    assert ann["lag_s"] == pytest.approx(42.0)
    assert ann["sender"] == "fundraising@our-charity.example.org"
    assert ann["message_id"] == "<m1.fundraising@our-charity.example.org>"
    assert pd.isna(view.loc["bo@example.org", "logged_at"])
    assert "unreachable" in view.loc["cy@example.org", "error"]
    assert pd.isna(view.loc["ann@example.org", "error"])


def test_sync_counts_and_lag_series(
    services: Services, scenario: tuple[SandboxCrm, ListMailbox]
) -> None:
    crm, _box = scenario
    counts = sync_counts(sync_table(services.engine, crm.read_log()))
    assert counts == {
        "sent_emails": 3,
        "recipients": 5,
        "logged": 1,
        "not_yet_logged": 1,
        "unmatched": 1,
        "excluded": 1,
        "errors": 1,
        "median_lag_s": pytest.approx(42.0),
        "max_lag_s": pytest.approx(42.0),
    }
    series = lag_series(sync_table(services.engine, crm.read_log()))
    assert series.tolist() == [pytest.approx(42.0)]
    assert series.index[0] == pd.Timestamp(START + timedelta(minutes=1))


def test_next_pass_clears_errors_and_requeue_restores(
    services: Services, scenario: tuple[SandboxCrm, ListMailbox]
) -> None:
    crm, box = scenario
    sync_once(services, box, crm)  # retries the error row
    table = sync_table(services.engine, crm.read_log())
    counts = sync_counts(table)
    assert (counts["errors"], counts["logged"]) == (0, 2)
    # Bo's entry, deleted in the CRM, is flagged until someone asks to log it again.
    assert counts["not_yet_logged"] == 1
    missing = table[table["status"] == "not yet logged"]
    keys = list(zip(missing["message_id"], missing["record"], strict=True))
    assert requeue_entries(services.engine, keys) == 1
    assert requeue_entries(services.engine, [("<m1.x>", "")]) == 0
    sync_once(services, box, crm)
    counts = sync_counts(sync_table(services.engine, crm.read_log()))
    assert (counts["logged"], counts["not_yet_logged"]) == (3, 0)
    assert len(crm.read_log()) == 3


def test_tracking_columns(
    services: Services, scenario: tuple[SandboxCrm, ListMailbox]
) -> None:
    crm, _box = scenario
    m1 = "<m1.fundraising@our-charity.example.org>"
    sent = START + timedelta(minutes=1)
    record_open(services.engine, m1, "GoogleImageProxy", sent + timedelta(seconds=3))
    record_open(services.engine, m1, FIREFOX, sent + timedelta(hours=5))
    record_click(
        services.engine, m1, "https://x.org/", "Proofpoint", sent + timedelta(hours=5)
    )
    record_click(
        services.engine, m1, "https://x.org/", FIREFOX, sent + timedelta(hours=6)
    )
    table = sync_table(services.engine, crm.read_log()).set_index("recipient")
    ann = table.loc["ann@example.org"]
    assert (ann["opens"], ann["machine_opens"]) == (1, 1)
    assert (ann["clicks"], ann["scanner_clicks"]) == (1, 1)
    assert table.loc["cy@example.org", "opens"] == 0


def test_empty_database(services: Services) -> None:
    table = sync_table(services.engine, [])
    assert table.empty
    counts = sync_counts(table)
    assert counts["sent_emails"] == 0 and counts["median_lag_s"] is None
    assert lag_series(table).empty


def test_deleted_record_shows_error(services: Services) -> None:
    crm = SandboxCrm(services.engine)
    crm.upsert_records([CrmRecord("recAnn", "Ann", ("ann@example.org",))])
    box = ListMailbox()
    box.add(("ann@example.org",))
    sync_once(services, box, Unreachable(services.engine))
    with services.engine.begin() as conn:
        conn.execute(crm_records_table.delete())
    sync_once(services, box, crm)
    (row,) = sync_table(services.engine, crm.read_log()).itertuples()
    assert row.status == "error" and "no longer exists" in row.error


def test_bench_runs_small() -> None:
    from bench.bench_dashboard import run

    figures = run(400)
    assert figures["sent_emails"] == 400
    assert figures["read_s"] > 0 and figures["build_s"] > 0
    assert figures["dashboard_ratio"] == pytest.approx(
        figures["build_s"] / figures["read_s"]
    )


def test_times_are_utc(
    services: Services, scenario: tuple[SandboxCrm, ListMailbox]
) -> None:
    crm, _box = scenario
    table = sync_table(services.engine, crm.read_log())
    assert str(table["sent_at"].dt.tz) == "UTC"
    assert str(table["logged_at"].dt.tz) == "UTC"
    assert table["sent_at"].min() >= pd.Timestamp(datetime(2026, 1, 1, tzinfo=UTC))
