"""The local Airtable enforces what the real one does (otherwise the Airtable tests
would prove nothing), and Steward's formula builder produces formulas it accepts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from lib.airtable_formulas import field_ref, lookup_formulas, text_literal
from lib.errors import CrmSchemaError
from tests.fakes.airtable_formula import FormulaError, compile_formula
from tests.fakes.airtable_seed import Seeded, fast_fake, seed
from tests.fakes.airtable_server import running


@pytest.fixture
def seeded() -> Iterator[Seeded]:
    fake = fast_fake(rate=5, window_s=0.5)
    with running(fake):
        yield seed(fake, count=3)


def call(seeded: Seeded, method: str, path: str, **kwargs: object) -> requests.Response:
    headers = {"Authorization": f"Bearer {seeded.fake.token}"}
    url = f"{seeded.fake.url}/v0/{seeded.base_id}/{path}"
    return requests.request(method, url, headers=headers, timeout=5, **kwargs)  # type: ignore[arg-type]


def error_type(response: requests.Response) -> str:
    return response.json()["error"]["type"]


def test_more_than_10_records_is_refused(seeded: Seeded) -> None:
    rows = [{"fields": {"Log Key": f"k{i}"}} for i in range(11)]
    answer = call(seeded, "POST", "Email log", json={"records": rows})
    assert answer.status_code == 422 and error_type(answer) == "INVALID_RECORDS"
    assert seeded.fake.records(seeded.base_id, "Email log") == []


def test_unknown_field_and_bad_value_are_refused_whole(seeded: Seeded) -> None:
    rows = [{"fields": {"Log Key": "a"}}, {"fields": {"Log_Key": "b"}}]
    answer = call(seeded, "POST", "Email log", json={"records": rows})
    assert answer.status_code == 422 and error_type(answer) == "UNKNOWN_FIELD_NAME"
    answer = call(
        seeded, "POST", "Email log", json={"records": [{"fields": {"Opens": "x"}}]}
    )
    assert error_type(answer) == "INVALID_VALUE_FOR_COLUMN"
    assert seeded.fake.records(seeded.base_id, "Email log") == []


def test_sixth_request_in_a_window_gets_429_and_a_penalty(seeded: Seeded) -> None:
    statuses = [call(seeded, "GET", "Donors").status_code for _ in range(7)]
    assert statuses[:5] == [200] * 5 and statuses[5:] == [429, 429]


def test_wrong_token_and_long_url(seeded: Seeded) -> None:
    url = f"{seeded.fake.url}/v0/{seeded.base_id}/Donors"
    wrong = requests.get(url, headers={"Authorization": "Bearer nope"}, timeout=5)
    assert wrong.status_code == 401
    long = call(seeded, "GET", "Donors", params={"filterByFormula": "x" * 16_001})
    assert long.status_code == 414


def test_evaluator_follows_airtable_syntax() -> None:
    fields = {"Email": "O'Brien@Example.org", "Other": "b@example.org"}
    hit = compile_formula("OR(FIND('o\\'brien', LOWER({Email})), FALSE())", {"Email"})
    assert hit(fields, "rec1")
    both = compile_formula(
        "LOWER({Email}&' '&{Other})='o\\'brien@example.org b@example.org'"
    )
    assert both(fields, "rec1")
    for broken in (
        "FIND('x)",
        "FIND('a', {Email}",
        "TRUE() TRUE()",
        "NOPE(1)",
        "{Email",
    ):
        with pytest.raises(FormulaError):
            compile_formula(broken, {"Email"})
    with pytest.raises(FormulaError, match="Unknown field"):
        compile_formula("{Missing}='a'", {"Email"})


def test_formula_builder_output_parses_and_matches_exactly() -> None:
    values = ["o'brien@x.org", 'q"uote@x.org', "back\\slash@x.org", "') , TRUE() , ('"]
    for value in values:
        literal = compile_formula(text_literal(value))
        assert literal({}, "rec1") == value  # the literal holds exactly the value
    formulas = lookup_formulas(values, ["Email", "Work Email"])
    node = compile_formula(formulas[0], {"Email", "Work Email"})
    assert node({"Email": "O'Brien@X.org"}, "r")
    assert not node({"Email": "someone@else.org"}, "r")


def test_lookup_is_chunked_and_bad_field_names_refused() -> None:
    addresses = [f"donor{i:05d}@example.org" for i in range(3_000)]
    formulas = lookup_formulas(addresses, ["Email"], max_chars=2_000)
    assert len(formulas) > 1 and all(len(f) <= 2_000 for f in formulas)
    assert sum(f.count("FIND(") for f in formulas) == len(addresses)
    with pytest.raises(CrmSchemaError, match="may not contain"):
        field_ref("Email}")
