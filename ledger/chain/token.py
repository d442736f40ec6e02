"""The mirror contract on one chain: deploy it, read it in batches, send owner transactions.

Reads of many holders go through `balancesOf(address[])` in chunks, all chunks in one JSON-RPC
batch. Writes are signed locally with the operator key, sent back to back with consecutive
nonces, and their receipts are collected at the end, so a sync costs one round trip per
transaction rather than one block wait per transaction.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from eth_abi import decode, encode
from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from web3 import Web3
from web3.exceptions import Web3Exception

from ledger.chain.artifacts import load_artifact
from ledger.chain.keys import Operator, require_key_fits_chain
from ledger.errors import Reason, Rejected, invariant

READ_CHUNK = 1_000  # holders per balancesOf/holdingsOf call
# Measured on Anvil 1.7.1 (tests/test_chain_contract.py checks them against real receipts):
GAS_BASE = 60_000  # a batchAdjust with no rows, plus calldata headroom
GAS_PER_HOLDER = 32_000  # measured ~26,700 for a new holder (a new slot and a Transfer event)
GAS_PER_HOLDER_EPOCH = 3_500  # measured ~2,800 per split a holder is behind (a cold SLOAD)
GAS_MARGIN_NUM, GAS_MARGIN_DEN = 5, 4  # gas limit = 5/4 of eth_estimateGas, plus GAS_SLACK
GAS_SLACK = 20_000
READ_GAS = 20_000_000  # what one eth_call of balancesOf may use (the node caps eth_call gas)
DEPLOY_GAS = 4_000_000
RECEIPT_TIMEOUT_S = 120


@dataclass(frozen=True, slots=True)
class Call:
    """One owner transaction to send: calldata plus what it does, for the records."""

    kind: str
    target_seq: int
    data: bytes
    gas: int
    holders: int = 0
    units_minted: int = 0
    units_burned: int = 0


@dataclass(frozen=True, slots=True)
class Estimate:
    """eth_estimateGas of one call: the gas, or None with whether it would revert."""

    gas: int | None
    reverted: bool


@dataclass(frozen=True, slots=True)
class SyncState:
    """What a sync round starts from, read in one call."""

    last_synced_seq: int
    write_count: int
    epoch: int


@dataclass(frozen=True, slots=True)
class Sent:
    """A transaction sent and mined."""

    call: Call
    tx_hash: bytes
    gas_used: int
    succeeded: bool


def _word(value: int) -> bytes:
    # int.to_bytes refuses negatives and values over 2**256 - 1, as the ABI requires.
    return value.to_bytes(32, "big")


def _address_word(address: str) -> bytes:
    raw = bytes.fromhex(address[2:]) if address.startswith("0x") else b""
    if len(raw) != 20:
        raise ValueError(f"not a 20-byte address: {address!r}")
    return bytes(12) + raw


def encode_args(statics: Sequence[int], arrays: Sequence[Sequence[bytes]]) -> bytes:
    """ABI-encode static integer words followed by dynamic arrays of 32-byte words.

    The selector's parameters must be in that order (all static ones first). eth_abi gives
    the same bytes (the contract tests prove it by calling the contract) but validates every
    element on the way, which costs more than the whole transaction on a 500-holder batch.
    """
    offset = 32 * (len(statics) + len(arrays))
    head = [_word(v) for v in statics]
    tail: list[bytes] = []
    for array in arrays:
        head.append(_word(offset))
        chunk = _word(len(array)) + b"".join(array)
        tail.append(chunk)
        offset += len(chunk)
    return b"".join(head) + b"".join(tail)


def _selector(signature: str) -> bytes:
    return function_signature_to_4byte_selector(signature)


SEL_ADJUST = _selector("batchAdjust(uint64,uint64,address[],uint256[],uint256[])")
SEL_REBASE = _selector("rebase(uint64,uint64,uint64,uint128,uint128,address[],uint256[],uint256[])")
SEL_MARK = _selector("markSynced(uint64,uint64,uint64)")
SEL_CATCH_UP = _selector("catchUp(address[],uint64)")
SEL_ANCHOR = _selector("anchor(uint64,bytes32)")
SEL_ANCHOR_LIABILITIES = _selector("anchorLiabilities(uint64,bytes32,uint256,uint8)")
SEL_BALANCES = _selector("balancesOf(address[])")
SEL_HOLDINGS = _selector("holdingsOf(address[])")


def _encode_rows(statics: Sequence[int], rows: Sequence[tuple[str, int, int]]) -> bytes:
    """Encode `statics` then (address[], before[], after[]) from (address, before, after) rows."""
    return encode_args(
        statics,
        [
            [_address_word(r[0]) for r in rows],
            [_word(r[1]) for r in rows],
            [_word(r[2]) for r in rows],
        ],
    )


class TokenClient:
    """The mirror contract at `address`, read with any key, written with the operator's."""

    def __init__(self, w3: Web3, address: str, operator: Operator | None = None) -> None:
        self.w3 = w3
        self.address = to_checksum_address(address)
        self.operator = operator
        self._operator_checked = False
        self.contract = w3.eth.contract(address=self.address, abi=list(load_artifact().abi))

    # ----- deployment -------------------------------------------------------------------

    @staticmethod
    def deploy(
        w3: Web3, operator: Operator, *, name: str, symbol: str, decimals: int
    ) -> tuple[TokenClient, dict[str, Any]]:
        """Deploy a new mirror owned by `operator`; return the client and the receipt."""
        require_key_fits_chain(operator, int(w3.eth.chain_id))
        artifact = load_artifact()
        factory = w3.eth.contract(abi=list(artifact.abi), bytecode=artifact.bytecode)
        data = factory.constructor(name, symbol, decimals, operator.address).data_in_transaction
        tx = _tx(w3, operator, to=None, data=bytes.fromhex(data[2:]), gas=DEPLOY_GAS)
        tx_hash = w3.eth.send_raw_transaction(operator.sign(tx))
        receipt = dict(w3.eth.wait_for_transaction_receipt(tx_hash, timeout=RECEIPT_TIMEOUT_S))
        if receipt["status"] != 1 or not receipt.get("contractAddress"):
            raise Rejected(Reason.CHAIN, f"deploying the mirror failed (tx {tx_hash.hex()})")
        return TokenClient(w3, receipt["contractAddress"], operator), receipt

    def has_code(self) -> bool:
        """Return whether contract code lives at the address (false after a chain reset)."""
        return len(self.w3.eth.get_code(self.address)) > 0

    # ----- reads ------------------------------------------------------------------------

    def view(self, name: str, *args: Any) -> Any:
        """Call a view function by name."""
        return getattr(self.contract.functions, name)(*args).call()

    def last_synced_seq(self) -> int:
        return int(self.view("lastSyncedSeq"))

    def epoch(self) -> int:
        return int(self.view("epoch"))

    def total_supply(self) -> int:
        return int(self.view("totalSupply"))

    def owner(self) -> str:
        return str(self.view("owner"))

    def sync_state(self) -> SyncState:
        """Return (lastSyncedSeq, writeCount, epoch), read in one call."""
        seq, writes, epoch = self.view("syncState")
        return SyncState(int(seq), int(writes), int(epoch))

    def ratios(self, start: int = 0) -> list[tuple[int, int]]:
        """Return the (num, den) of every split/merge from epoch `start` on, in order."""
        out: list[tuple[int, int]] = []
        while True:
            nums, dens = self.view("ratiosFrom", start + len(out), 1_000)
            out.extend((int(n), int(d)) for n, d in zip(nums, dens, strict=True))
            if len(nums) < 1_000:
                return out

    def balances(self, addresses: Sequence[str], *, chunk: int | None = None) -> list[int]:
        """Return the balance of every address, in order, in one JSON-RPC batch of eth_calls.

        Each chunk's `balanceOf` applies the splits since each holder was written, so the
        chunk shrinks as splits accumulate (the node caps the gas of an eth_call).
        """
        if chunk is None:
            per_holder = 3_000 + 700 * self.epoch()
            chunk = max(1, min(READ_CHUNK, READ_GAS // per_holder))
        out: list[int] = []
        for result in self._read_chunks(SEL_BALANCES, addresses, chunk):
            out.extend(int(v) for v in decode(["uint256[]"], result)[0])
        return out

    def holdings(self, addresses: Sequence[str]) -> list[tuple[int, int]]:
        """Return the stored (units, epoch) of every address (cheap whatever the splits)."""
        out: list[tuple[int, int]] = []
        for result in self._read_chunks(SEL_HOLDINGS, addresses, READ_CHUNK):
            units, epochs = decode(["uint256[]", "uint64[]"], result)
            out.extend((int(u), int(e)) for u, e in zip(units, epochs, strict=True))
        return out

    def last_anchor_seq(self) -> int | None:
        """Return the seq of the latest anchor, or None when there is none."""
        count = int(self.view("anchorCount"))
        if count == 0:
            return None
        seqs, _ = self.view("anchorsFrom", count - 1, 1)
        return int(seqs[0])

    def _read_chunks(self, selector: bytes, addresses: Sequence[str], chunk: int) -> list[bytes]:
        if not addresses:
            return []
        chunks = [list(addresses[i : i + chunk]) for i in range(0, len(addresses), chunk)]
        requests = [
            (
                "eth_call",
                [
                    {
                        "to": self.address,
                        "data": "0x"
                        + (selector + encode_args([], [[_address_word(a) for a in part]])).hex(),
                    },
                    "latest",
                ],
            )
            for part in chunks
        ]
        return [bytes.fromhex(result[2:]) for result in self._raw_batch(requests)]

    def anchors(self) -> list[tuple[int, bytes]]:
        """Return every anchor (seq, entry hash) in the order written."""
        count = int(self.view("anchorCount"))
        result: list[tuple[int, bytes]] = []
        for start in range(0, count, 1_000):
            seqs, hashes = self.view("anchorsFrom", start, 1_000)
            result.extend((int(s), bytes(h)) for s, h in zip(seqs, hashes, strict=True))
        return result

    def _raw_batch(self, requests: list[tuple[str, list[Any]]]) -> list[Any]:
        """Send one plain JSON-RPC batch; return the results in order, refusing on any error."""
        results: list[Any] = []
        for response in self._raw_batch_replies(requests):
            if "error" in response:
                raise Rejected(Reason.CHAIN, f"JSON-RPC batch failed: {response['error']}")
            results.append(response["result"])
        return results

    def _raw_batch_replies(self, requests: list[tuple[str, list[Any]]]) -> list[dict[str, Any]]:
        # One HTTP request; the replies matched back to the requests by id.
        provider = self.w3.provider
        responses = provider.make_batch_request(requests)  # type: ignore[attr-defined]
        if not isinstance(responses, list):
            raise Rejected(Reason.CHAIN, f"batch request failed: {responses!r}"[:300])
        by_id = {int(r["id"]): r for r in responses}
        return [dict(by_id[k]) for k in sorted(by_id)]

    def estimate(self, calls: Sequence[Call]) -> list[Estimate]:
        """Return eth_estimateGas of every call against the latest block, in one JSON-RPC batch.

        A call that would revert comes back as `Estimate(None, reverted=True)`; one that needs
        more gas than the node allows (a block) as `Estimate(None, reverted=False)`.
        """
        if not calls:
            return []
        sender = self._operator().address
        requests = [
            ("eth_estimateGas", [{"from": sender, "to": self.address, "data": "0x" + c.data.hex()}])
            for c in calls
        ]
        out: list[Estimate] = []
        for reply in self._raw_batch_replies(requests):
            if "error" not in reply:
                out.append(Estimate(int(reply["result"], 16), reverted=False))
                continue
            message = str(reply["error"].get("message", "")).lower()
            too_big = "out of gas" in message or "exceeds" in message or "allowance" in message
            out.append(Estimate(None, reverted=not too_big))
        return out

    # ----- writes -----------------------------------------------------------------------

    def adjust_call(
        self,
        *,
        expected_seq: int,
        seq: int,
        rows: Sequence[tuple[str, int, int]],
        gas: int = 0,
    ) -> Call:
        """Return the `batchAdjust` call moving each (address, before, after) row.

        `gas` 0 means: size it later (`sized`); the sync uses eth_estimateGas.
        """
        data = SEL_ADJUST + _encode_rows([expected_seq, seq], rows)
        return Call(
            kind="adjust",
            target_seq=seq,
            data=data,
            gas=gas,
            holders=len(rows),
            units_minted=sum(r[2] - r[1] for r in rows if r[2] > r[1]),
            units_burned=sum(r[1] - r[2] for r in rows if r[1] > r[2]),
        )

    def rebase_call(
        self,
        *,
        expected_seq: int,
        expected_writes: int,
        seq: int,
        num: int,
        den: int,
        rows: Sequence[tuple[str, int, int]],
        gas: int = 0,
    ) -> Call:
        """Return the `rebase` call: one split/merge plus its dust corrections."""
        data = SEL_REBASE + _encode_rows([expected_seq, expected_writes, seq, num, den], rows)
        return Call(
            kind="rebase",
            target_seq=seq,
            data=data,
            gas=gas,
            holders=len(rows),
            units_minted=sum(r[2] - r[1] for r in rows if r[2] > r[1]),
            units_burned=sum(r[1] - r[2] for r in rows if r[1] > r[2]),
        )

    def mark_call(self, *, expected_seq: int, expected_writes: int, seq: int) -> Call:
        data = SEL_MARK + encode(
            ["uint64", "uint64", "uint64"], [expected_seq, expected_writes, seq]
        )
        return Call("mark", seq, data, 80_000)

    def catch_up_call(self, addresses: Sequence[str], max_epochs: int, *, gas: int) -> Call:
        """Return a `catchUp` call: re-store holders up to `max_epochs` later (no balance moves)."""
        data = SEL_CATCH_UP + encode(["address[]", "uint64"], [list(addresses), max_epochs])
        return Call("catchup", 0, data, gas, holders=len(addresses))

    def anchor_call(self, seq: int, entry_hash: bytes) -> Call:
        return Call(
            "anchor", seq, SEL_ANCHOR + encode(["uint64", "bytes32"], [seq, entry_hash]), 150_000
        )

    def anchor_liabilities_call(
        self, seq: int, root_hash: bytes, root_sum: int, depth: int
    ) -> Call:
        data = SEL_ANCHOR_LIABILITIES + encode(
            ["uint64", "bytes32", "uint256", "uint8"], [seq, root_hash, root_sum, depth]
        )
        return Call("liabilities", seq, data, 150_000)

    def send(self, calls: Sequence[Call]) -> list[Sent]:
        """Sign and send `calls` back to back (consecutive nonces); return them once mined."""
        if not calls:
            return []
        operator = self._operator()
        nonce = self.w3.eth.get_transaction_count(operator.address, "pending")
        gas_price = self.w3.eth.gas_price
        chain_id = self.w3.eth.chain_id
        hashes: list[bytes] = []
        for offset, call in enumerate(calls):
            invariant(call.gas > 0, "a call is sent with a gas limit", kind=call.kind)
            tx = {
                "to": self.address,
                "data": call.data,
                "gas": call.gas,
                "gasPrice": gas_price,
                "nonce": nonce + offset,
                "chainId": chain_id,
                "value": 0,
            }
            try:
                hashes.append(bytes(self.w3.eth.send_raw_transaction(operator.sign(tx))))
            except (Web3Exception, ValueError) as exc:
                raise Rejected(
                    Reason.CHAIN, f"node refused a {call.kind} transaction: {exc}"
                ) from exc
        receipts = self._receipts(hashes)
        return [
            Sent(call, tx_hash, int(r["gasUsed"], 16), int(r["status"], 16) == 1)
            for call, tx_hash, r in zip(calls, hashes, receipts, strict=True)
        ]

    def send_one(self, call: Call) -> Sent:
        """Send one call and wait for its receipt (the naive way, one block per holder)."""
        return self.send([call])[0]

    def wait_idle(self, *, timeout_s: float = 60.0) -> None:  # float-ok: seconds
        """Wait until none of the operator's transactions is pending (e.g. from a killed run)."""
        operator = self._operator()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            latest = self.w3.eth.get_transaction_count(operator.address, "latest")
            pending = self.w3.eth.get_transaction_count(operator.address, "pending")
            if latest == pending:
                return
            time.sleep(0.2)
        raise Rejected(Reason.CHAIN, "operator transactions stay pending", retryable=True)

    def _receipts(self, hashes: Sequence[bytes]) -> list[dict[str, Any]]:
        """Return the raw receipts of `hashes`, polling in JSON-RPC batches until all are mined.

        Raw JSON, not web3's formatted receipts: formatting 500 Transfer logs per receipt
        would cost more than mining them.
        """
        found: dict[int, dict[str, Any]] = {}
        deadline = time.monotonic() + RECEIPT_TIMEOUT_S
        while len(found) < len(hashes):
            waiting = [i for i in range(len(hashes)) if i not in found]
            replies = self._raw_batch(
                [("eth_getTransactionReceipt", ["0x" + hashes[i].hex()]) for i in waiting]
            )
            for i, receipt in zip(waiting, replies, strict=True):
                if receipt is not None:
                    found[i] = receipt
            if len(found) < len(hashes):
                if time.monotonic() > deadline:
                    raise Rejected(Reason.CHAIN, "transactions not mined in time", retryable=True)
                time.sleep(0.01)
        return [found[i] for i in range(len(hashes))]

    def _operator(self) -> Operator:
        if self.operator is None:
            raise Rejected(Reason.CHAIN, "this command needs the operator key")
        if not self._operator_checked:
            require_key_fits_chain(self.operator, int(self.w3.eth.chain_id))
            self._operator_checked = True
        return self.operator


def holder_gas(holders: int, behind: int = 0) -> int:
    """Return a gas limit that covers writing `holders` holders `behind` splits behind each.

    From measured costs with headroom; the sync uses it to cut batches before it asks the node
    (eth_estimateGas) for the real figure.
    """
    return GAS_BASE + holders * (GAS_PER_HOLDER + GAS_PER_HOLDER_EPOCH * behind)


def sized(call: Call, estimate: int, *, cap: int) -> Call:
    """Return `call` with the gas limit for an eth_estimateGas result: margin, at most `cap`."""
    return replace(call, gas=min(cap, estimate * GAS_MARGIN_NUM // GAS_MARGIN_DEN + GAS_SLACK))


def _tx(w3: Web3, operator: Operator, *, to: str | None, data: bytes, gas: int) -> dict[str, Any]:
    tx: dict[str, Any] = {
        "data": data,
        "gas": gas,
        "gasPrice": w3.eth.gas_price,
        "nonce": w3.eth.get_transaction_count(operator.address, "pending"),
        "chainId": w3.eth.chain_id,
        "value": 0,
    }
    if to is not None:
        tx["to"] = to
    return tx
