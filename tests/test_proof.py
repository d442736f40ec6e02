"""Proof of liabilities: the tree of a fund's holder register sums to its shares outstanding,
every holder's proof verifies, and a proof with any hashed field changed does not.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.clock import FixedClock
from ledger.domain.money import format_units
from ledger.domain.proof import (
    LiabilitiesRoot,
    LiabilityProof,
    Node,
    build_tree,
    build_tree_from_leaves,
    check_proof,
    commitment_of,
    holder_secret,
)
from ledger.errors import Reason, Rejected
from ledger.services.funds import Funds
from ledger.services.ledger import Ledger, open_ledger
from ledger.services.proof import (
    check_against_ledger,
    liabilities_at,
    liabilities_root,
    liability_proof,
)

T0 = datetime(2020, 3, 12, tzinfo=UTC)
KEY = bytes(range(32))


def fixed_key(_n: int) -> bytes:
    return KEY


# --- an independent, naive implementation of docs/proof-of-liabilities.md ------------------
def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _u(x: int) -> bytes:
    return x.to_bytes(32, "big")


def reference_root(key: bytes, seq: int, register: dict[str, int]) -> LiabilitiesRoot:
    """Return the root the document defines, padding materialised, stdlib only."""
    leaves = []
    for holder, units in register.items():
        if units:
            secret = hmac.new(key, holder.encode() + b"\x00" + _u(seq), hashlib.sha256).digest()
            leaves.append((_h(b"\x00" + secret + holder.encode()), units))
    nodes = [(_h(b"\x01" + c + _u(u)), u) for c, u in sorted(leaves)]
    size = 1
    while size < len(nodes):
        size *= 2
    nodes += [(bytes(32), 0)] * (size - len(nodes))
    depth = 0
    while len(nodes) > 1:
        nodes = [
            (_h(b"\x02" + a[0] + _u(a[1]) + b[0] + _u(b[1])), a[1] + b[1])
            for a, b in zip(nodes[0::2], nodes[1::2], strict=True)
        ]
        depth += 1
    return LiabilitiesRoot(nodes[0][0], nodes[0][1], depth, seq)


def tampered_fields(proof: LiabilityProof) -> Iterator[tuple[str, LiabilityProof]]:
    """Yield (what, proof) for one change of every hashed field of `proof`."""
    flip = bytes([proof.commitment[0] ^ 1]) + proof.commitment[1:]
    yield "units", replace(proof, units=proof.units + 1)
    yield "units down", replace(proof, units=proof.units - 1)
    yield "index", replace(proof, index=proof.index ^ 1)
    yield "index too large", replace(proof, index=proof.index + 2**proof.depth)
    yield "seq", replace(proof, seq=proof.seq + 1)
    yield "holder", replace(proof, holder=proof.holder + "x")
    yield "secret", replace(proof, secret=bytes(32))
    yield "commitment", replace(proof, commitment=flip)
    yield "root hash", replace(proof, root=Node(bytes(32), proof.root.sum))
    yield "root sum", replace(proof, root=Node(proof.root.hash, proof.root.sum + 1))
    yield "depth", replace(proof, depth=proof.depth + 1)
    for k, sibling in enumerate(proof.path):
        path = list(proof.path)
        path[k] = Node(bytes([sibling.hash[0] ^ 0x80]) + sibling.hash[1:], sibling.sum)
        yield f"sibling hash {k}", replace(proof, path=tuple(path))
        path[k] = Node(sibling.hash, sibling.sum + 1)
        yield f"sibling sum {k}", replace(proof, path=tuple(path))
        path[k] = Node(sibling.hash, -1)
        yield f"negative sibling sum {k}", replace(proof, path=tuple(path))
    yield "path longer", replace(proof, path=(*proof.path, Node(bytes(32), 0)))
    if proof.path:
        yield "path shorter", replace(proof, path=proof.path[:-1])


# --- the worked example ---------------------------------------------------------------------
def test_worked_example_three_holders_exact() -> None:
    """Three holders: depth 2, one padding leaf, root sum 3.500000000000000017 shares."""
    register = {"alice": 10**18, "bob": 25 * 10**17, "treasury": 17, "carol": 0}
    tree = build_tree(key=KEY, seq=7, register=register)
    root = tree.root()
    assert (root.sum, root.depth, root.seq, tree.count) == (3_500_000_000_000_000_017, 2, 7, 3)
    assert root == reference_root(KEY, 7, register)
    assert root.hash.hex() == "4d0f6b21e027972386abee5e2d423392e74f02e9be357a648ccba1fdd75c5352"
    proofs = {
        h: tree.proof_for(book="BTC3L", holder=h, secret=holder_secret(KEY, h, 7))
        for h in ("alice", "bob", "treasury")
    }
    assert {h: (p.index, p.units) for h, p in proofs.items()} == {
        "bob": (0, 25 * 10**17),
        "alice": (1, 10**18),
        "treasury": (2, 17),
    }
    # The treasury's sibling is the padding leaf; alice's level-0 sibling is bob's leaf.
    assert proofs["treasury"].path[0] == Node(bytes(32), 0)
    assert proofs["alice"].path[0].sum == 25 * 10**17
    assert proofs["alice"].path[1].sum == 17
    assert proofs["alice"].contract_args() == (
        7,
        proofs["alice"].commitment,
        10**18,
        1,
        [proofs["alice"].path[0].hash, proofs["alice"].path[1].hash],
        [25 * 10**17, 17],
    )
    for proof in proofs.values():
        assert check_proof(proof, published=root) is None
    with pytest.raises(Rejected) as refused:
        tree.proof_for(book="BTC3L", holder="carol", secret=holder_secret(KEY, "carol", 7))
    assert refused.value.reason is Reason.INSUFFICIENT_SHARES


def test_small_trees_edge_cases() -> None:
    """No holder: one empty leaf; one holder: the root is the leaf, depth 0, empty path."""
    empty = build_tree(key=KEY, seq=0, register={}).root()
    assert empty == LiabilitiesRoot(bytes(32), 0, 0, 0) == reference_root(KEY, 0, {})
    one = build_tree(key=KEY, seq=3, register={"alice": 5})
    secret = holder_secret(KEY, "alice", 3)
    proof = one.proof_for(book="B", holder="alice", secret=secret)
    assert proof.path == () and proof.depth == 0 and proof.index == 0
    assert proof.root.hash == _h(b"\x01" + commitment_of(secret, "alice") + _u(5))
    assert check_proof(proof) is None
    five = {f"h{i}": i + 1 for i in range(5)}
    assert build_tree(key=KEY, seq=1, register=five).root().depth == 3


def test_register_refusals() -> None:
    """Negative units and a total of 2**256 or more are refused, never wrapped."""
    with pytest.raises(Rejected) as negative:
        build_tree(key=KEY, seq=1, register={"alice": 5, "bob": -1})
    assert negative.value.reason is Reason.AMOUNT_OUT_OF_RANGE and "bob" in str(negative.value)
    with pytest.raises(Rejected) as total:
        build_tree(key=KEY, seq=1, register={"a": 2**255, "b": 2**255})
    assert total.value.reason is Reason.AMOUNT_OUT_OF_RANGE
    assert build_tree(key=KEY, seq=1, register={"a": 2**255, "b": 2**255 - 1}).root().sum == (
        2**256 - 1
    )
    with pytest.raises(Rejected):
        build_tree(key=b"short", seq=1, register={"a": 1})


def test_every_tampered_field_fails_with_a_reason() -> None:
    """Units, index, seq, holder, secret, commitment, root, depth, each sibling: all fail."""
    register = {f"holder{i}": 10**18 + i for i in range(11)}
    tree = build_tree(key=KEY, seq=40, register=register)
    root = tree.root()
    proof = tree.proof_for(book="BTC3L", holder="holder5", secret=holder_secret(KEY, "holder5", 40))
    assert check_proof(proof, published=root) is None
    seen = set()
    for what, changed in tampered_fields(proof):
        problem = check_proof(changed, published=root)
        assert problem is not None, what
        seen.add(what)
    assert len(seen) == 11 + 3 * root.depth + 2
    # The seq is bound by the published root of that seq, whose secrets differ.
    other = build_tree(key=KEY, seq=41, register=register).root()
    assert other.sum == root.sum and other.hash != root.hash
    assert check_proof(replace(proof, seq=41), published=other) is not None
    negative = replace(proof, path=(Node(proof.path[0].hash, -5), *proof.path[1:]))
    assert "negative" in str(check_proof(negative))


def test_overflowing_path_sums_fail() -> None:
    """A path whose sums reach 2**256 fails instead of wrapping around."""
    proof = build_tree(key=KEY, seq=1, register={"a": 1, "b": 2}).proof_for(
        book="B", holder="a", secret=holder_secret(KEY, "a", 1)
    )
    huge = replace(proof, path=(Node(proof.path[0].hash, 2**256 - 1),))
    assert check_proof(huge) is not None


# --- properties -----------------------------------------------------------------------------
holder_ids = st.text(alphabet="abcdefghij0123456789_.-@", min_size=1, max_size=12)
registers = st.dictionaries(holder_ids, st.integers(0, 2**200), min_size=1, max_size=40)


@settings(max_examples=150, deadline=None)
@given(
    register=registers,
    key=st.binary(min_size=32, max_size=32),
    seq=st.integers(0, 2**64),
    data=st.data(),
)
def test_verification_succeeds_exactly_for_untampered_proofs(
    register: dict[str, int], key: bytes, seq: int, data: st.DataObject
) -> None:
    """For a random register, a proof verifies against the root iff it is unchanged."""
    tree = build_tree(key=key, seq=seq, register=register)
    root = tree.root()
    assert root == reference_root(key, seq, register)
    assert root.sum == sum(register.values())
    holders = sorted(h for h, u in register.items() if u)
    if not holders:
        assert root == LiabilitiesRoot(bytes(32), 0, 0, seq)
        return
    holder = data.draw(st.sampled_from(holders))
    proof = tree.proof_for(book="BTC3L", holder=holder, secret=holder_secret(key, holder, seq))
    assert proof.units == register[holder]
    assert check_proof(proof, published=root) is None
    options = list(tampered_fields(proof))
    what, changed = data.draw(st.sampled_from(options))
    assert (check_proof(changed, published=root) is None) == (changed == proof), what


@settings(max_examples=60, deadline=None)
@given(leaves=st.lists(st.tuples(st.binary(min_size=32, max_size=32), st.integers(0, 2**64))))
def test_every_leaf_of_any_tree_verifies(leaves: list[tuple[bytes, int]]) -> None:
    """Any set of (commitment, units) leaves: every leaf's path leads to the root."""
    distinct = dict(leaves)
    tree = build_tree_from_leaves(9, distinct.items())
    root = tree.root()
    assert root.sum == sum(distinct.values())
    from ledger.domain.proof import recompute_root

    for index in range(tree.count):
        commitment, units = tree.leaf(index)
        assert recompute_root(commitment, units, index, tree.path(index)) == Node(
            root.hash, root.sum
        )


# --- a fund -----------------------------------------------------------------------------------
def _fund(lg: Ledger, holders: int) -> dict[str, int]:
    """Mint `holders` holders, redeem some in part and some in full, split 2:3 (one entry:
    the share index), mint and redeem again; return the seq of each stage.
    """
    funds = Funds(lg, clock=FixedClock(T0))
    funds.create_product("BTC3L", max_price_age=None)
    funds.set_price("BTC", "100", at=T0)
    moment = iter(T0 + timedelta(seconds=1 + i) for i in range(10 * holders + 100))
    # The orders go in netted batches of up to 500 (`Funds.orders`): the same mints and
    # redemptions as one by one, in a fraction of the time.
    mints = [
        {"side": "mint", "holder": f"h{i}", "cash": str(100 + (i * 37) % 900)}
        for i in range(holders)
    ]
    for start in range(0, holders, 500):
        funds.orders("BTC3L", mints[start : start + 500], at=next(moment))
    partial = [{"side": "redeem", "holder": f"h{i}", "shares": "0.1"} for i in range(0, holders, 7)]
    for start in range(0, len(partial), 500):
        funds.orders("BTC3L", partial[start : start + 500], at=next(moment))
    share = funds.terms("BTC3L").share_asset
    held = lg.balances("BTC3L", asset=share.code)
    full = [
        {
            "side": "redeem",
            "holder": f"h{i}",
            "shares": format_units(held[(f"holder:h{i}", share.code)], share.scale),
        }
        for i in range(3, holders, 50)
    ]
    funds.orders("BTC3L", full, at=next(moment))
    before_split = lg.head("BTC3L")[0]
    split = funds.split("BTC3L", "2:3", at=next(moment)).seq
    funds.set_price("BTC", "104.5", at=next(moment))
    for i in range(20):
        funds.mint("BTC3L", f"late{i}", cash="250", at=next(moment))
    funds.redeem("BTC3L", "h1", shares="0.25", at=next(moment))
    return {"before_split": before_split, "split": split, "head": lg.head("BTC3L")[0]}


def _every_proof_verifies(lg: Ledger, seq: int) -> LiabilitiesRoot:
    found = liabilities_at(lg, "BTC3L", seq=seq)
    root, register = found.root(), found.register
    assert root.seq == seq
    # The leaves are the holders' shares under the index; the split rounding no holder shows
    # makes up the rest of the shares outstanding (at most one base unit per holder).
    assert root.sum == sum(register.units.values())
    assert root.sum + register.remainder == register.shares_outstanding
    assert 0 <= register.remainder <= len(register.units)
    assert root == reference_root(found.key, seq, register.units)
    for holder, units in register.units.items():
        proof = found.proof(holder)
        assert proof.units == units and proof.seq == seq
        assert check_proof(proof, published=root) is None
    return root


@pytest.fixture(scope="module")
def big_fund(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Ledger, dict[str, int]]]:
    """A SQLite fund with 10,000 holders after mints, redemptions and a split."""
    url = f"sqlite:///{tmp_path_factory.mktemp('proof') / 'fund.db'}"
    lg = open_ledger(url, clock=FixedClock(T0))
    lg.init()
    seqs = _fund(lg, 10_000)
    yield lg, seqs
    lg.close()


def test_ten_thousand_holders_every_proof_verifies(big_fund: tuple[Ledger, dict[str, int]]) -> None:
    """10,000 holders: at the head every proof verifies and the root sums to the supply."""
    lg, seqs = big_fund
    root = _every_proof_verifies(lg, seqs["head"])
    funds = Funds(lg)
    register = liabilities_at(lg, "BTC3L").register
    assert root.sum + register.remainder == funds.state("BTC3L").shares
    assert funds.holders("BTC3L")["remainder"] == format_units(register.remainder, 18)
    # 10,000 minted, 200 redeemed in full, 20 late mints; the split moves no unit, so the
    # treasury gets nothing.
    assert len(register.units) == 10_000 - 200 + 20
    assert "treasury" not in register.units
    assert "h3" not in register.units
    assert root.depth == 14


def test_ten_thousand_holders_before_and_at_the_split(
    big_fund: tuple[Ledger, dict[str, int]],
) -> None:
    """At the seq before the split and at the split, the tree sums to the supply then."""
    lg, seqs = big_fund
    before = _every_proof_verifies(lg, seqs["before_split"])
    at_split = _every_proof_verifies(lg, seqs["split"])
    assert at_split.sum > before.sum  # 2:3 gives each holder 1.5x (rounded down)
    assert before == liabilities_root(lg, "BTC3L", seq=seqs["before_split"])
    h0 = liabilities_at(lg, "BTC3L", seq=seqs["before_split"]).register.units["h0"]
    h0_after = liabilities_at(lg, "BTC3L", seq=seqs["split"]).register.units["h0"]
    assert h0_after == h0 * 3 // 2


def test_ten_thousand_holders_tampered_proofs_fail_against_the_ledger(
    big_fund: tuple[Ledger, dict[str, int]],
) -> None:
    """A real holder's proof: unchanged it checks against the ledger; changed, it never does."""
    lg, seqs = big_fund
    proof = liability_proof(lg, "BTC3L", "h42")
    assert check_against_ledger(lg, proof) is None
    changes = dict(tampered_fields(proof))
    for what in ("units", "index", "seq", "sibling hash 0", "sibling sum 0", "sibling sum 13"):
        assert check_against_ledger(lg, changes[what]) is not None, what
    beyond = replace(proof, seq=seqs["head"] + 1)
    assert "no seq" in str(check_against_ledger(lg, beyond))


def test_refusals_of_the_service(big_fund: tuple[Ledger, dict[str, int]]) -> None:
    """Unknown product or holder, a zero holding, a seq beyond the head: refused."""
    lg, seqs = big_fund
    cases: list[tuple[Callable[[], object], Reason]] = [
        (lambda: liability_proof(lg, "ETH3L", "h1"), Reason.UNKNOWN_PRODUCT),
        (lambda: liability_proof(lg, "BTC3L", "nobody"), Reason.UNKNOWN_ACCOUNT),
        (lambda: liability_proof(lg, "BTC3L", "h3"), Reason.INSUFFICIENT_SHARES),
        (lambda: liability_proof(lg, "BTC3L", "late0", seq=5), Reason.INSUFFICIENT_SHARES),
        (lambda: liabilities_root(lg, "BTC3L", seq=seqs["head"] + 1), Reason.UNKNOWN_ENTRY),
    ]
    for call, reason in cases:
        with pytest.raises(Rejected) as refused:
            call()
        assert refused.value.reason is reason


@pytest.mark.postgres
def test_postgres_fund_every_proof_verifies(pg_url: str) -> None:
    """The same fund, 300 holders, on PostgreSQL: same checks at three seqs."""
    lg = open_ledger(pg_url, clock=FixedClock(T0))
    lg.init()
    try:
        seqs = _fund(lg, 300)
        for seq in seqs.values():
            _every_proof_verifies(lg, seq)
        register = liabilities_at(lg, "BTC3L").register
        assert (
            liabilities_root(lg, "BTC3L").sum + register.remainder
            == Funds(lg).state("BTC3L").shares
        )
        proof = liability_proof(lg, "BTC3L", "h10", seq=seqs["split"])
        assert check_against_ledger(lg, proof) is None
        assert check_against_ledger(lg, replace(proof, units=proof.units + 1)) is not None
    finally:
        lg.close()


def test_worked_fund_example_exact(tmp_path: Path) -> None:
    """Alice pays 1000 and bob 250 at NAV 100: the tree holds their exact units and no more."""
    lg = open_ledger(f"sqlite:///{tmp_path / 'w.db'}", clock=FixedClock(T0))
    lg.init()
    funds = Funds(lg, clock=FixedClock(T0))
    funds.create_product("BTC3L")
    funds.set_price("BTC", "100", at=T0)
    funds.mint("BTC3L", "alice", cash="1000", at=T0 + timedelta(seconds=10))
    funds.mint("BTC3L", "bob", cash="250", at=T0 + timedelta(seconds=20))
    found = liabilities_at(lg, "BTC3L", new_key=fixed_key)
    # 999 net of the 0.1% fee buys 999 / (1 + 3 x 0.0005) / 100 = 9.97503744 shares.
    assert found.register.units == {
        "alice": 9_975_037_440_000_000_000,
        "bob": 2_493_759_705_000_047_729,
    }
    root = found.root()
    assert (root.sum, root.depth, root.seq) == (12_468_797_145_000_047_729, 1, 3)
    assert root == reference_root(KEY, 3, found.register.units)
    proof = found.proof("alice")
    assert proof.path == (Node(proof.path[0].hash, 2_493_759_705_000_047_729),)
    assert check_proof(proof, published=root) is None
    lg.close()


def test_an_orders_batch_is_in_the_tree(tmp_path: Path) -> None:
    """One `orders` entry minting for two holders and redeeming for a third: all in the tree."""
    lg = open_ledger(f"sqlite:///{tmp_path / 'o.db'}", clock=FixedClock(T0))
    lg.init()
    funds = Funds(lg, clock=FixedClock(T0))
    funds.create_product("BTC3L", max_price_age=None)
    funds.set_price("BTC", "100", at=T0)
    funds.mint("BTC3L", "alice", cash="1000", at=T0 + timedelta(seconds=1))
    items = [
        {"side": "mint", "holder": "bob", "cash": "300"},
        {"side": "mint", "holder": "carol", "cash": "200"},
        {"side": "redeem", "holder": "alice", "shares": "2.5"},
    ]
    funds.orders("BTC3L", items, at=T0 + timedelta(seconds=2))
    head = lg.head("BTC3L")[0]
    root = _every_proof_verifies(lg, head)
    register = liabilities_at(lg, "BTC3L").register
    assert {"alice", "bob", "carol"} <= set(register.units)
    assert register.units["alice"] == 9_975_037_440_000_000_000 - 2_500_000_000_000_000_000
    assert root.sum == Funds(lg).state("BTC3L").supply
    lg.close()
