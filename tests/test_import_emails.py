"""Email addresses in exports: validated and normalised exactly as lib.emails does,
several per row, several per cell, and bad ones reported with row and reason."""

from __future__ import annotations

import random

from lib.emails import InvalidAddress, normalise_address
from lib.importing import read_donor_file
from lib.importing.addresses import normalise_many


def _lib_emails(text: str) -> str | None:
    try:
        return normalise_address(text)
    except InvalidAddress:
        return None


def test_fast_path_agrees_with_lib_emails() -> None:
    """The vectorised shortcut for plain addresses accepts nothing lib.emails
    refuses and normalises exactly like it."""
    rng = random.Random(7)
    pieces = ["a", "Z", "0", ".", "-", "+", "_", "'", "é", "@", "--", "..", " ", "xn--"]
    tlds = ["org", "com", "test", "local", "c", "1a", "museum", "invalid", "onion"]
    corpus = [
        "donor+gala@example.org",
        "DANIEL.FOSTER@EXAMPLE.COM",
        "a@b.co",
        "x@localhost",
        "x@mail.example.test",
        "a" * 65 + "@example.org",
        "a@" + "b" * 64 + ".org",
        "ab--cd@ab--x.org",
        "José@exämple.org",
        "tad.greer.example.com",
        ".lead@example.org",
        "trail.@example.org",
        "x@-bad.org",
    ]
    for _ in range(3000):
        local = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 6)))
        domain = "".join(rng.choice(pieces[:7]) for _ in range(rng.randint(1, 5)))
        corpus.append(f"{local}@{domain}.{rng.choice(tlds)}")
    results, reasons = normalise_many(corpus)
    for text, result, reason in zip(corpus, results, reasons, strict=True):
        assert result == _lib_emails(text), text
        assert (result is None) == bool(reason), text


def test_c17_plus_address_is_valid_and_kept() -> None:
    result = read_donor_file(b"Email\ndonor+gala@example.org\n", "plus.csv")
    assert result.donors[0].email == "donor+gala@example.org"
    assert result.doubtful == [] and result.rejected == []


def test_idn_trailing_space_and_capitals() -> None:
    text = "Name,Email\nAnn,  Ann.Lee@Example.ORG \nJosé,josé@exämple.org\n"
    result = read_donor_file(text.encode(), "mixed.csv")
    assert [d.email for d in result.donors] == [
        "ann.lee@example.org",
        normalise_address("josé@exämple.org"),
    ]


def test_invalid_address_reported_with_row_and_donor_kept_unemailable() -> None:
    text = "Name,Email\nTad Greer,tad.greer.example.com\nAnn Lee,ann@example.org\n"
    result = read_donor_file(text.encode(), "bad.csv")
    tad = result.donors[0]
    assert tad.email is None and tad.blocked_reason == "no address"
    rows = [(i.row, i.reason) for i in result.doubtful]
    assert any(
        row == 1 and "'tad.greer.example.com'" in reason and "@-sign" in reason
        for row, reason in rows
    )


def test_several_columns_and_cells_with_two_addresses() -> None:
    text = (
        "Name,Primary Email,Additional Emails\n"
        'Zoë,zoe@example.org,"zcr@example.net, ZOE@example.org"\n'
        'Bea,,"bea@example.org; not-an-address"\n'
    )
    result = read_donor_file(text.encode(), "multi.csv")
    zoe, bea = result.donors
    assert zoe.emails == ["zoe@example.org", "zcr@example.net"]
    assert bea.email == "bea@example.org"
    assert any("'not-an-address'" in i.reason and i.row == 2 for i in result.doubtful)


def test_preferred_email_indirection() -> None:
    text = (
        "Name,Personal Email,Work Email,Preferred Email\n"
        "Ann,ann@home.example.org,ann@work.example.org,Work\n"
        "Bo,,bo@work.example.org,Personal\n"
        "Cy,cy@home.example.org,cy@work.example.org,\n"
    )
    result = read_donor_file(text.encode(), "pref.csv")
    assert [d.email for d in result.donors] == [
        "ann@work.example.org",  # the preferred column
        "bo@work.example.org",  # preferred column empty: the filled one
        "cy@home.example.org",  # no preference: the first column
    ]
    assert result.donors[0].emails == ["ann@work.example.org", "ann@home.example.org"]


def test_email_column_of_mostly_placeholders_is_still_the_email_column() -> None:
    """Tester case: an Email column with 7 'N/A' and 3 real addresses was left
    unmapped and the 3 addresses were thrown away silently."""
    rows = [f"Donor {i},{cell}" for i, cell in enumerate(["N/A"] * 5 + ["none", "-"])]
    rows += [f"Real {i},real{i}@example.org" for i in range(3)]
    data = ("Name,Email\n" + "\n".join(rows) + "\n").encode()
    result = read_donor_file(data, "placeholders.csv")
    assert result.mapping["Email"] == "email"
    assert [d.email for d in result.donors][7:] == [
        "real0@example.org",
        "real1@example.org",
        "real2@example.org",
    ]
    no_email = {i.row for i in result.doubtful if i.reason.startswith("no email")}
    assert no_email == set(range(1, 8))
    assert not [i for i in result.doubtful if "invalid email" in i.reason]


def test_token_email_header_of_placeholders_and_addresses_maps_to_email() -> None:
    """A header that only contains 'email' ('Donor Contact Email') is judged on its
    cells, placeholders aside."""
    data = b"Name,Donor Contact Email\nA,unknown\nB,N/A\nC,c@example.org\nD,n/a\n"
    result = read_donor_file(data, "contact.csv")
    assert result.mapping["Donor Contact Email"] == "email"
    assert [d.email for d in result.donors] == [None, None, "c@example.org", None]


def test_invalid_address_reason_is_a_sentence() -> None:
    """Tester case: 'line break inside the address Imported without…' lacked
    punctuation between the two sentences."""
    result = read_donor_file(b'Name,Email\nAnn,"ann\nlee@example.org"\n', "x.csv")
    (issue,) = [i for i in result.doubtful if "invalid email" in i.reason]
    assert "line break inside the address. Imported without" in issue.reason


def test_an_address_wrapped_in_a_cell_is_kept_so_a_flag_protects_it() -> None:
    """Second tester: 'Pat Doe <pat@example.org>' on a do-not-email record was
    dropped, so another record at pat@example.org could be emailed."""
    data = (
        "Record ID,Name,Email,Do Not Email\n"
        "X1,Pat Angle,Pat Doe <pat@example.org>,Yes\n"
        "X2,Mo Mailto,mailto:mo@example.org,\n"
    )
    frame = read_donor_file(data.encode(), "wrapped.csv").to_frame()
    assert list(frame["email"]) == ["pat@example.org", "mo@example.org"]
    assert frame.loc[0, "blocked_reason"] == "do not email"
