"""Pure parts of the chain mirror: holder addresses, RPC guard, keys, and the sync plan."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from eth_utils import keccak, to_checksum_address

from ledger.chain.holders import (
    address_map,
    address_of,
    book_address_of,
    derived_address,
    holder_of,
)
from ledger.chain.keys import (
    ENV_KEY,
    ENV_KEYSTORE,
    ENV_PASSWORD,
    anvil_dev_operator,
    load_operator,
    write_keystore,
)
from ledger.chain.plan import (
    Adjust,
    LedgerSnapshot,
    Rebase,
    balances_at,
    differences,
    next_step,
    rebase_corrections,
)
from ledger.chain.rpc import check_rpc_url, is_loopback_url
from ledger.chain.sync import holder_balances
from ledger.domain.journal import EntryDraft, JournalEntry, Posting
from ledger.errors import Reason, Rejected

T0 = datetime(2021, 1, 1, tzinfo=UTC)
# A throwaway key made up for this test (not Anvil's, not anyone's).
TEST_KEY = "0x" + "11" * 32


def test_derived_address_follows_the_documented_recipe() -> None:
    """A holder's derived address is keccak256(tag || id)[12:], checksummed, stable."""
    expected = to_checksum_address(keccak(b"token-ledger/holder/v1:alice")[-20:])
    assert derived_address("alice") == expected == address_of("alice")
    assert address_of("alice") != address_of("bob")


def test_address_id_and_explicit_mapping_win_over_derivation() -> None:
    """An id that is an address maps to itself; an explicit mapping wins over the derivation."""
    raw = "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"
    assert address_of(raw) == to_checksum_address(raw)
    assert address_of("alice", explicit={"alice": CHECKSUMMED}) == CHECKSUMMED
    assert address_of("alice", explicit={"alice": CHECKSUMMED.lower()}) == CHECKSUMMED
    with pytest.raises(Rejected):
        address_map(["alice", "bob"], explicit={"alice": CHECKSUMMED, "bob": CHECKSUMMED})
    with pytest.raises(Rejected):
        address_of("not a valid id!")
    assert holder_of("holder:alice") == "alice" and holder_of("equity:shares-outstanding") is None
    assert address_of("treasury") == derived_address("treasury")  # the fund's own holder


CHECKSUMMED = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
BAD_CASE = "0x70997970c51812DC3A010C7d01b50e0d17dc79C8"  # mixed case, not EIP-55


def test_two_spellings_of_one_address_are_one_holder() -> None:
    """Lower-case and EIP-55 spellings of an address id are one holder on one address."""
    lower = CHECKSUMMED.lower()
    assert address_of(lower) == address_of(CHECKSUMMED) == CHECKSUMMED
    # Read back from a book (older data may hold any spelling, even a bad checksum): one key.
    keys = {holder_of(f"holder:{s}") for s in (lower, CHECKSUMMED, BAD_CASE, "0X" + lower[2:])}
    assert keys == {lower}
    assert address_map([lower, CHECKSUMMED, BAD_CASE]) == {lower: CHECKSUMMED}
    assert {book_address_of(s) for s in (lower, CHECKSUMMED, BAD_CASE)} == {CHECKSUMMED}
    assert book_address_of("Treasury") == derived_address("Treasury")  # refused as input
    # An explicit mapping keyed by either spelling applies; mapping an address elsewhere does not.
    assert address_map([lower], explicit={CHECKSUMMED: CHECKSUMMED}) == {lower: CHECKSUMMED}
    with pytest.raises(Rejected, match="cannot be mapped"):
        address_of(lower, explicit={CHECKSUMMED: to_checksum_address("0x" + "11" * 20)})


def test_an_address_id_or_address_with_a_bad_checksum_is_refused() -> None:
    """A caller's mixed-case address (as holder id or as mapped address) must be valid EIP-55."""
    with pytest.raises(Rejected, match="EIP-55"):
        address_of(BAD_CASE)
    with pytest.raises(Rejected, match="invalid"):
        address_of("alice", explicit={"alice": BAD_CASE})
    with pytest.raises(Rejected, match="invalid"):
        address_of("alice", explicit={"alice": "0x1234"})


def test_two_funded_spellings_of_one_address_are_named_in_one_line() -> None:
    """Two spellings of one address both holding units are refused naming both accounts."""
    lower = CHECKSUMMED.lower()
    both = {(f"holder:{CHECKSUMMED}", "B"): 5, (f"holder:{lower}", "B"): 7, ("holder:a", "B"): 1}
    with pytest.raises(Rejected) as err:
        holder_balances("B", both)
    message = str(err.value)
    assert err.value.reason is Reason.DUPLICATE and "\n" not in message
    assert f"holder:{CHECKSUMMED} and holder:{lower}" in message and "transfer" in message
    # Once one spelling is emptied (a transfer entry), the address holds the other's units.
    moved = {(f"holder:{CHECKSUMMED}", "B"): 0, (f"holder:{lower}", "B"): 12, ("holder:a", "B"): 1}
    assert holder_balances("B", moved) == {lower: 12, "a": 1}


def test_rpc_urls_are_loopback_only_unless_allowed() -> None:
    """Only loopback RPC URLs are accepted unless remote use is explicitly allowed."""
    for ok in (
        "http://127.0.0.1:8545",
        "http://localhost:1",
        "http://[::1]:8545",
        "http://127.9.0.1",
    ):
        assert is_loopback_url(ok)
        check_rpc_url(ok)
    for bad in ("http://10.0.0.1:8545", "https://example.invalid", "http://192.168.1.2:8545"):
        assert not is_loopback_url(bad)
        with pytest.raises(Rejected):
            check_rpc_url(bad)
    assert check_rpc_url("https://example.invalid", allow_remote=True)
    with pytest.raises(Rejected):
        check_rpc_url("file:///etc/passwd", allow_remote=True)


def test_operator_key_never_appears_in_text(tmp_path: pytest.TempPathFactory) -> None:
    """The operator loads from env or keystore and its repr shows the address, not the key."""
    op = load_operator({ENV_KEY: TEST_KEY})
    assert TEST_KEY[2:] not in repr(op) and TEST_KEY[2:] not in str(op)
    path = tmp_path / "key.json"  # type: ignore[operator]
    address = write_keystore(
        path, private_key=bytes.fromhex(TEST_KEY[2:]), password="pw", iterations=2**4
    )
    from_store = load_operator({ENV_KEYSTORE: str(path), ENV_PASSWORD: "pw"})
    assert from_store.address == address == op.address
    assert TEST_KEY[2:] not in path.read_text()
    with pytest.raises(Rejected) as err:
        load_operator({ENV_KEYSTORE: str(path), ENV_PASSWORD: "wrong"})
    assert TEST_KEY[2:] not in str(err.value)
    with pytest.raises(Rejected) as err:
        load_operator({ENV_KEY: "0xnot-a-key"})
    assert "0xnot-a-key" not in str(err.value)
    with pytest.raises(Rejected):
        load_operator({})
    assert load_operator({}, allow_dev_key=True).address == anvil_dev_operator().address


def _entry(
    seq: int, kind: str, postings: dict[str, int], meta: dict[str, str] | None = None
) -> JournalEntry:
    draft = EntryDraft(
        "B",
        kind,
        T0,
        tuple(Posting(a, "B", n) for a, n in postings.items()),
        metadata=tuple(sorted((meta or {}).items())),
    )
    return JournalEntry(draft, seq, T0, bytes(32), bytes(32))


def _snapshot() -> LedgerSnapshot:
    entries = (
        _entry(1, "mint", {"holder:a": 11, "holder:b": 7, "equity:shares-outstanding": -18}),
        _entry(
            2,
            "split",
            {"holder:a": 22, "holder:b": 14, "equity:shares-outstanding": -36},
            {"ratio_num": "3", "ratio_den": "1"},
        ),
        _entry(
            3,
            "merge",
            {
                "holder:a": -17,
                "holder:b": -11,
                "holder:treasury": 1,
                "equity:shares-outstanding": 27,
            },
            {"ratio_num": "1", "ratio_den": "2"},
        ),
        _entry(4, "redeem", {"holder:b": -3, "equity:shares-outstanding": 3}),
    )
    return LedgerSnapshot(
        book="B",
        head_seq=4,
        head_hash=bytes(32),
        holders=("a", "b", "treasury"),
        balances={"a": 16, "b": 7, "treasury": 1},
        entries=entries,
        from_seq=0,
    )


def test_balances_at_walks_the_journal_back() -> None:
    """Holder balances at any seq are recovered from the head by undoing later entries."""
    snap = _snapshot()
    assert balances_at(snap, 0) == {"a": 0, "b": 0, "treasury": 0}
    assert balances_at(snap, 1) == {"a": 11, "b": 7, "treasury": 0}
    assert balances_at(snap, 2) == {"a": 33, "b": 21, "treasury": 0}
    assert balances_at(snap, 4) == {"a": 16, "b": 7, "treasury": 1}


def test_plan_stops_at_each_split_and_carries_only_the_dust() -> None:
    """A split is a barrier: mirror the state before it, then one rebase with dust corrections."""
    snap = _snapshot()
    step = next_step(snap, 0)
    assert isinstance(step, Rebase) and (step.seq, step.num, step.den) == (2, 3, 1)
    assert step.targets_before == {"a": 11, "b": 7, "treasury": 0}
    assert rebase_corrections(step) == (54, [])
    merge = next_step(snap, 2)
    assert isinstance(merge, Rebase) and merge.seq == 3
    # 33/2 = 16 and 21/2 = 10 (rounded down); the ledger sends the dust unit to the treasury.
    assert rebase_corrections(merge) == (26, [("treasury", 0, 1)])
    last = next_step(snap, 3)
    assert isinstance(last, Adjust) and last.seq == 4
    assert differences(last.targets, {"a": 16, "b": 10, "treasury": 1}) == [("b", 10, 7)]


def test_address_of_takes_the_ids_the_fund_stores() -> None:
    """address_of accepts every canonical id check_holder_id returns, and is stable on it."""
    from ledger.domain.fund.product import check_holder_id

    for given in (CHECKSUMMED, CHECKSUMMED.lower(), "alice", "a.b@c-d_1"):
        canonical = check_holder_id(given)
        assert address_of(canonical) == address_of(given) == book_address_of(canonical)
    assert address_of(check_holder_id(CHECKSUMMED)) == CHECKSUMMED
