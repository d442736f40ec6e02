"""Canonical JSON Lines export: round trip, canonical form, and refusal of bad or tampered files."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.domain.canonical import (
    GENESIS_HASH,
    chain_hash,
    definitions_of,
    encode_fields,
    seal,
)
from ledger.domain.journal import (
    Account,
    AccountType,
    BalanceRule,
    EntryDraft,
    JournalEntry,
    Posting,
    check_draft,
    make_metadata,
)
from ledger.domain.money import UINT256_MAX, Asset
from ledger.errors import Reason, Rejected
from ledger.export.jsonl import entry_line, read_jsonl, write_jsonl

BOOK = "BTC1.5L"
ASSETS = (Asset("BTC1.5L", 18), Asset("USDT", 6), Asset("X_-.", 0))
ACCOUNTS = (
    Account(BOOK, "holder:alice", AccountType.ASSET, BalanceRule.NON_NEGATIVE),
    Account(BOOK, "holder:0xAbCdEf0123456789aBcDeF0123456789AbCdEf01", AccountType.ASSET),
    Account(BOOK, "equity:shares-outstanding", AccountType.EQUITY),
    Account(BOOK, "cash", AccountType.ASSET),
    Account(BOOK, "fees:mgmt", AccountType.INCOME),
    Account(BOOK, "payable", AccountType.LIABILITY),
    Account(BOOK, "gas", AccountType.EXPENSE),
)
START_US = 1_700_000_000_000_000
DEFINITIONS = definitions_of(ASSETS, ACCOUNTS)


def chain(drafts: list[EntryDraft]) -> list[JournalEntry]:
    """Seal drafts into a hash chain, as the kernel would record them."""
    entries, prev = [], GENESIS_HASH
    for seq, draft in enumerate(drafts, start=1):
        entry = seal(
            check_draft(draft),
            seq=seq,
            recorded_us=START_US + seq,
            prev_hash=prev,
            definitions=DEFINITIONS,
        )
        entries.append(entry)
        prev = entry.hash
    return entries


def transfer(amount: int, asset: str = "BTC1.5L", **extra: Any) -> EntryDraft:
    """Return a two-posting draft moving `amount` from equity to alice."""
    return EntryDraft(
        book=BOOK,
        kind=extra.pop("kind", "mint"),
        effective_at=extra.pop("effective_at", datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC)),
        postings=(
            Posting("holder:alice", asset, amount),
            Posting("equity:shares-outstanding", asset, -amount),
        ),
        **extra,
    )


SMALL_BOOK = chain(
    [
        transfer(10**18, metadata=make_metadata({"nav": "10.5", "note": 'héllo\n"x"'})),
        transfer(UINT256_MAX, idempotency_key="mint-2 ✓"),
        transfer(7, asset="USDT", kind="fee"),
        transfer(-1, kind="reversal", reverses=1),
    ]
)


def export(entries: list[JournalEntry]) -> list[str]:
    """Return the JSON Lines of `entries` (one string per line, newline included)."""
    out = io.StringIO()
    write_jsonl(out, book=BOOK, assets=ASSETS, accounts=ACCOUNTS, entries=entries)
    # Split on "\n" only: str.splitlines would also split inside text at U+0085 or U+2028,
    # which JSON leaves unescaped.
    return [line + "\n" for line in out.getvalue().split("\n")[:-1]]


def read_all(lines: list[str]) -> list[JournalEntry]:
    """Read every entry of an export (the iterator checks lazily)."""
    return list(read_jsonl(lines).entries)


# --- round trip -----------------------------------------------------------------------------

texts = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
amounts = st.one_of(st.integers(1, 10**6), st.integers(1, 10**30), st.integers(1, UINT256_MAX))


@st.composite
def drafts(draw: st.DrawFn) -> EntryDraft:
    """Draw a balanced draft over the module's accounts and assets."""
    legs = draw(
        st.lists(
            st.tuples(st.sampled_from(ACCOUNTS), st.sampled_from(ASSETS)), min_size=1, max_size=3
        )
    )
    postings: list[Posting] = []
    for account, asset in legs:
        amount = draw(amounts) * draw(st.sampled_from((1, -1)))
        postings.append(Posting(account.code, asset.code, amount))
        postings.append(Posting("cash", asset.code, -amount))
    return EntryDraft(
        book=BOOK,
        kind=draw(st.from_regex(r"[a-z][a-z0-9_.]{0,10}", fullmatch=True)),
        effective_at=datetime.fromtimestamp(0, UTC).replace(year=draw(st.integers(1971, 2200))),
        postings=tuple(postings),
        metadata=make_metadata(draw(st.dictionaries(texts, texts, max_size=3))),
        # Keys may hold any printable text; control characters are refused by check_draft.
        idempotency_key=draw(
            st.none()
            | texts.filter(lambda t: bool(t) and not any(c < " " or c == "\x7f" for c in t))
        ),
        reverses=draw(st.none() | st.integers(1, 10**12)),
    )


@settings(max_examples=60, deadline=None)
@given(st.lists(drafts(), max_size=8))
def test_round_trip_reproduces_every_entry_and_hash(book_drafts: list[EntryDraft]) -> None:
    """Export then read returns the same header and entries, every hash recomputed and equal."""
    entries = chain(book_drafts)
    parsed = read_jsonl(export(entries))
    assert parsed.book == BOOK
    assert sorted(parsed.assets, key=str) == sorted(ASSETS, key=str)
    assert sorted(parsed.accounts, key=str) == sorted(ACCOUNTS, key=str)
    assert list(parsed.entries) == entries


@settings(max_examples=60, deadline=None)
@given(st.lists(drafts(), min_size=1, max_size=3))
def test_entry_line_is_canonical_sorted_compact_json(book_drafts: list[EntryDraft]) -> None:
    """The hand-written line equals json.dumps(sort_keys, compact, UTF-8) of the same object."""
    for entry, line in zip(chain(book_drafts), export(chain(book_drafts))[1:-1], strict=True):
        obj = json.loads(line)
        canonical = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert entry_line(entry) == canonical == line.rstrip("\n")
        assert all(isinstance(obj[k], str) for k in ("seq", "effective_us", "recorded_us"))


def test_header_and_first_entry_are_exactly_as_documented() -> None:
    """The documented layout (field names, strings for integers) is what is written."""
    lines = export(SMALL_BOOK[:1])
    header = json.loads(lines[0])
    assert header["type"] == "book" and header["format"] == "token-ledger/2"
    assert header["assets"][0] == {"code": "BTC1.5L", "scale": "18"}
    assert {"code": "holder:alice", "type": "asset", "rule": "non_negative"} in header["accounts"]
    entry = json.loads(lines[1])
    assert entry["postings"][0] == {
        "account": "holder:alice",
        "asset": "BTC1.5L",
        "amount": "1000000000000000000",
    }
    assert entry["prev_hash"] == "00" * 32 and entry["hash"] == SMALL_BOOK[0].hash.hex()
    assert entry["effective_us"] == "1704164645000006" and entry["reverses"] is None


def test_amount_near_uint256_max_survives() -> None:
    """2**256-1 base units are written as an exact decimal string and read back exactly."""
    line = export(SMALL_BOOK)[2]
    assert f'"amount":"{UINT256_MAX}"' in line
    assert read_all(export(SMALL_BOOK))[1].postings[0].amount == UINT256_MAX


def test_write_refuses_an_entry_of_another_book() -> None:
    """A file holds one book: an entry of another book is refused."""
    other = seal(
        EntryDraft(
            "ETH5L",
            "mint",
            datetime(2024, 1, 1, tzinfo=UTC),
            (Posting("a", "X", 1), Posting("b", "X", -1)),
        ),
        seq=1,
        recorded_us=0,
        prev_hash=GENESIS_HASH,
        definitions=definitions_of(
            [Asset("X", 0)],
            [Account("ETH5L", "a", AccountType.ASSET), Account("ETH5L", "b", AccountType.ASSET)],
        ),
    )
    with pytest.raises(Rejected, match="belongs to book 'ETH5L'"):
        write_jsonl(io.StringIO(), book=BOOK, assets=ASSETS, accounts=ACCOUNTS, entries=[other])


def test_write_refuses_entries_out_of_sequence() -> None:
    """Only a whole book from seq 1, in order, is written: anything else could not be read back."""
    with pytest.raises(Rejected, match="entry 2 where seq 1 was expected"):
        write_jsonl(
            io.StringIO(), book=BOOK, assets=ASSETS, accounts=ACCOUNTS, entries=SMALL_BOOK[1:]
        )


# --- refusal of tampered and malformed files --------------------------------------------------


def reseal(lines: list[str]) -> list[str]:
    """Recompute every hash of an edited export (and its trailer), as a careful forger would.

    Encoding 2 covers the header's definitions of what each entry posts to, so they are read
    from the (possibly edited) header, exactly as the documented encoding says.
    """
    header = json.loads(lines[0])
    scales = {a["code"]: a["scale"] for a in header["assets"]}
    kinds = {a["code"]: [a["code"], a["type"], a["rule"]] for a in header["accounts"]}
    out, prev, count = [lines[0]], GENESIS_HASH, 0
    for line in lines[1:]:
        obj = json.loads(line)
        if obj.get("type") == "end":
            obj.update(entries=str(count), head_hash=prev.hex())
            out.append(json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n")
            continue
        count += 1
        used_assets = dict.fromkeys(p["asset"] for p in obj["postings"])
        used_accounts = dict.fromkeys(p["account"] for p in obj["postings"])
        definitions = json.dumps(
            [
                [[c, scales.get(c)] for c in used_assets],
                [kinds.get(a) for a in used_accounts],
            ],
            separators=(",", ":"),
        )[1:-1]
        obj["prev_hash"] = prev.hex()
        canonical = encode_fields(
            book=BOOK,
            seq=int(obj["seq"]),
            kind=obj["kind"],
            effective_us=int(obj["effective_us"]),
            recorded_us=int(obj["recorded_us"]),
            key=obj["key"],
            reverses=None if obj["reverses"] is None else int(obj["reverses"]),
            metadata_json=json.dumps(
                sorted(obj["metadata"].items()), separators=(",", ":"), ensure_ascii=False
            ),
            postings_json=json.dumps(
                [[p["account"], p["asset"], p["amount"]] for p in obj["postings"]],
                separators=(",", ":"),
                ensure_ascii=False,
            ),
            encoding=2,
            definitions_json="," + definitions,
        )
        prev = chain_hash(prev, canonical)
        obj["hash"] = prev.hex()
        out.append(
            json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
        )
    return out


def edit(
    number: int, change: Callable[[dict[str, Any]], object]
) -> Callable[[list[str]], list[str]]:
    """Return a tamperer that applies `change` to the object on line `number` (1-based)."""

    def tamper(lines: list[str]) -> list[str]:
        obj = json.loads(lines[number - 1])
        change(obj)
        return [*lines[: number - 1], json.dumps(obj) + "\n", *lines[number:]]

    return tamper


def test_reseal_of_an_untouched_export_is_identical() -> None:
    """The forger's helper is faithful, so the refusals below test the reader, not the helper."""
    assert reseal(export(SMALL_BOOK)) == export(SMALL_BOOK)


def set_amounts(units: int) -> Callable[[dict[str, Any]], object]:
    """Return a change that sets every posting to +-`units`, keeping the entry balanced."""

    def change(obj: dict[str, Any]) -> None:
        for posting in obj["postings"]:
            sign = -1 if posting["amount"].startswith("-") else 1
            posting["amount"] = str(sign * units)

    return change


def first_posting(**fields: object) -> Callable[[dict[str, Any]], object]:
    """Return a change that updates the first posting of an entry."""
    return lambda obj: obj["postings"][0].update(fields)


def resealed(tamper: Callable[[list[str]], list[str]]) -> Callable[[list[str]], list[str]]:
    """Return `tamper` followed by recomputing every hash."""
    return lambda lines: reseal(tamper(lines))


def resealed_up_to(
    line: int, tamper: Callable[[list[str]], list[str]]
) -> Callable[[list[str]], list[str]]:
    """Return `tamper` with hashes recomputed up to `line` only (the next line no longer chains)."""
    return lambda lines: reseal(tamper(lines))[:line] + lines[line:]


TOO_BIG = 2 * UINT256_MAX
CASES: list[tuple[str, Callable[[list[str]], list[str]], str]] = [
    ("line deleted", lambda ls: ls[:2] + ls[3:], "line 3: seq 3 where 2 was expected"),
    ("lines swapped", lambda ls: [ls[0], ls[2], ls[1], *ls[3:]], "line 2: seq 2 where 1 was"),
    ("not JSON", lambda ls: [*ls[:2], "{oops\n", *ls[3:]], "line 3: not valid JSON"),
    ("blank line", lambda ls: [*ls[:2], "\n", *ls[2:]], "line 3: not valid JSON"),
    ("missing field", edit(2, lambda o: o.pop("kind")), "line 2: the entry has missing ['kind']"),
    ("extra field", edit(2, lambda o: o.update(x="1")), "line 2: the entry has unexpected ['x']"),
    (
        "number amount",
        edit(2, first_posting(amount=1.5)),
        "line 2: amount must be a decimal integer",
    ),
    (
        "amount with +",
        edit(2, first_posting(amount="+1")),
        "line 2: amount must be a decimal integer",
    ),
    (
        "seq 01",
        edit(2, lambda o: o.update(seq="01")),
        "line 2: seq must be a decimal integer string",
    ),
    (
        "unbalanced",
        resealed(edit(2, first_posting(amount="5"))),
        "line 2: postings do not sum to zero",
    ),
    (
        "unknown account",
        resealed(edit(2, first_posting(account="holder:eve"))),
        "line 2: account 'holder:eve' is not in",
    ),
    (
        "unknown asset",
        resealed(edit(2, first_posting(asset="DAI"))),
        "line 2: asset 'DAI' is not in the header",
    ),
    (
        "beyond uint256",
        resealed(edit(3, set_amounts(TOO_BIG))),
        f"line 3: amount {TOO_BIG} is zero or beyond",
    ),
    ("zero amount", resealed(edit(3, set_amounts(0))), "line 3: amount 0 is zero or beyond"),
    (
        "bad kind",
        resealed(edit(2, lambda o: o.update(kind="Mint"))),
        "line 2: kind 'Mint' must match",
    ),
    (
        "metadata not text",
        edit(2, lambda o: o.update(metadata={"nav": 1})),
        "line 2: metadata 'nav' must map text",
    ),
    (
        "hash not hex",
        edit(2, lambda o: o.update(hash="XYZ")),
        "line 2: hash must be 64 lower-case hex",
    ),
    (
        "wrong format",
        edit(1, lambda o: o.update(format="token-ledger/3")),
        "line 1: expected a header",
    ),
    ("bad book", edit(1, lambda o: o.update(book="no space")), "line 1: book 'no space' must be"),
    (
        "bad scale",
        edit(1, lambda o: o["assets"][0].update(scale="99")),
        "line 1: decimals must be 0..36",
    ),
    (
        "bad account type",
        edit(1, lambda o: o["accounts"][0].update(type="cash")),
        "line 1: malformed header",
    ),
]


@pytest.mark.parametrize(("tamper", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_bad_line_is_refused_naming_its_line(
    tamper: Callable[[list[str]], list[str]], message: str
) -> None:
    """A malformed, unbalanced or unknown line is refused with its line number."""
    lines = tamper(export(SMALL_BOOK))
    with pytest.raises(Rejected) as caught:
        read_all(lines)
    assert caught.value.reason is Reason.BAD_INPUT
    assert str(caught.value).startswith(f"bad_input: {message}"), str(caught.value)


def set_header(change: Callable[[dict[str, Any]], object]) -> Callable[[list[str]], list[str]]:
    """Return a tamperer that edits the header line and writes it back canonically."""

    def tamper(lines: list[str]) -> list[str]:
        obj = json.loads(lines[0])
        change(obj)
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return [text + "\n", *lines[1:]]

    return tamper


def _asset(code: str, **fields: str) -> Callable[[dict[str, Any]], object]:
    return lambda h: next(a for a in h["assets"] if a["code"] == code).update(fields)


def _account(code: str, **fields: str) -> Callable[[dict[str, Any]], object]:
    return lambda h: next(a for a in h["accounts"] if a["code"] == code).update(fields)


EVIDENCE_CASES: list[tuple[str, Callable[[list[str]], list[str]], Reason, str]] = [
    ("amount changed", edit(3, set_amounts(5)), Reason.HASH_MISMATCH, "line 3: entry 2 does not"),
    (
        "amount and hash changed",
        resealed_up_to(3, edit(3, set_amounts(5))),
        Reason.HASH_MISMATCH,
        "line 4: prev_hash",
    ),
    (
        "USDT scale 6 -> 2",
        set_header(_asset("USDT", scale="2")),
        Reason.HASH_MISMATCH,
        "line 4: entry 3 does not match its hash",
    ),
    (
        "BTC1.5L scale 18 -> 0",
        set_header(_asset("BTC1.5L", scale="0")),
        Reason.HASH_MISMATCH,
        "line 2: entry 1 does not match its hash",
    ),
    (
        "non_negative rule removed",
        set_header(_account("holder:alice", rule="none")),
        Reason.HASH_MISMATCH,
        "line 2: entry 1 does not match its hash",
    ),
    (
        "account type changed",
        set_header(_account("equity:shares-outstanding", type="liability")),
        Reason.HASH_MISMATCH,
        "line 2: entry 1 does not match its hash",
    ),
    (
        "no trailer",
        lambda ls: ls[:-1],
        Reason.TRUNCATED_EXPORT,
        "line 6: the file ends after entry 4 without its trailer",
    ),
    (
        "cut after an entry",
        lambda ls: ls[:3],
        Reason.TRUNCATED_EXPORT,
        "line 4: the file ends after entry 2",
    ),
    (
        "cut inside the last line",
        lambda ls: [*ls[:-1], ls[-1][:-5]],
        Reason.TRUNCATED_EXPORT,
        "line 6: the file ends inside a line",
    ),
    (
        "cut inside an entry line",
        lambda ls: [*ls[:2], ls[2][:40]],
        Reason.TRUNCATED_EXPORT,
        "line 3: the file ends inside a line",
    ),
    (
        "header only",
        lambda ls: ls[:1],
        Reason.TRUNCATED_EXPORT,
        "line 2: the file ends after entry 0",
    ),
    ("empty file", lambda ls: [], Reason.TRUNCATED_EXPORT, "line 1: empty file"),
    (
        "last entry deleted, trailer kept",
        lambda ls: [*ls[:-2], ls[-1]],
        Reason.TRAILER_MISMATCH,
        "line 5: the trailer counts 4 entries, the file holds 3",
    ),
    (
        "trailer head hash changed",
        edit(6, lambda o: o.update(head_hash="11" * 32)),
        Reason.TRAILER_MISMATCH,
        "line 6: the trailer's head_hash 1111",
    ),
    (
        "a line after the trailer",
        lambda ls: [*ls, ls[1]],
        Reason.TRAILER_MISMATCH,
        "line 7: a line after the trailer",
    ),
]


@pytest.mark.parametrize(
    ("tamper", "reason", "message"),
    [c[1:] for c in EVIDENCE_CASES],
    ids=[c[0] for c in EVIDENCE_CASES],
)
def test_an_export_that_is_not_whole_or_not_true_is_refused(
    tamper: Callable[[list[str]], list[str]], reason: Reason, message: str
) -> None:
    """Edited hashes or definitions, a missing or disagreeing trailer: each has its own code."""
    lines = tamper(export(SMALL_BOOK))
    with pytest.raises(Rejected) as caught:
        read_all(lines)
    assert caught.value.reason is reason
    assert str(caught.value).startswith(f"{reason.value}: {message}"), str(caught.value)


def test_a_forger_must_reseal_every_hash_to_change_a_definition() -> None:
    """A changed scale passes only once every entry using it is re-hashed (then the head
    differs from the original's, which is what `verify` and anchors compare)."""
    forged = reseal(set_header(_asset("USDT", scale="2"))(export(SMALL_BOOK)))
    entries = read_all(forged)
    assert [e.hash for e in entries[:2]] == [e.hash for e in SMALL_BOOK[:2]]
    assert entries[2].hash != SMALL_BOOK[2].hash and entries[3].hash != SMALL_BOOK[3].hash


def test_the_trailer_is_exactly_as_documented() -> None:
    """The last line is {"entries","head_hash","type":"end"}: the count and the last hash."""
    lines = export(SMALL_BOOK)
    assert lines[-1] == (
        f'{{"entries":"4","head_hash":"{SMALL_BOOK[-1].hash.hex()}","type":"end"}}\n'
    )
    assert export([])[-1] == f'{{"entries":"0","head_hash":"{"00" * 32}","type":"end"}}\n'
    assert read_all(export([])) == []


def test_a_format_1_export_is_refused_with_a_way_out() -> None:
    """An export of the previous format (no trailer, no definitions) is refused at its header."""
    lines = set_header(lambda h: h.update(format="token-ledger/1"))(export(SMALL_BOOK))
    with pytest.raises(Rejected, match="line 1: format token-ledger/1 has no trailer"):
        read_all(lines)


def test_an_untampered_export_reads_without_error() -> None:
    """The fixture the refusals start from is itself accepted (so each refusal is the tamper's)."""
    assert read_all(export(SMALL_BOOK)) == SMALL_BOOK


def test_a_real_file_round_trips_text_with_unicode_line_separators(tmp_path: Path) -> None:
    """Text with U+0085, U+2028 and CR survives a file written and read with open()."""
    drafts = [transfer(1, metadata=make_metadata({"note": "a\x85b\u2028c\u2029d\re\nf"}))]
    entries = chain(drafts)
    path = tmp_path / "book.jsonl"
    with path.open("w", encoding="utf-8") as out:
        write_jsonl(out, book=BOOK, assets=ASSETS, accounts=ACCOUNTS, entries=entries)
    with path.open(encoding="utf-8") as lines:
        assert list(read_jsonl(lines).entries) == entries
