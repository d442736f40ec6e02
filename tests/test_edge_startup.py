"""Start-up (issue 9): a non-chain command imports neither the chain stack nor matplotlib.

Each case runs in a fresh interpreter, so that modules imported by other tests do not count.
This is not a timing test: the module list is what makes start-up fast and it is exact.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("web3", "eth_account", "eth_utils", "eth_abi", "eth_keys", "matplotlib")

SCRIPT = """
import json, sys
args, heavy_names = json.loads(sys.argv[1]), set(json.loads(sys.argv[2]))
sys.argv = ["token-ledger", *args]
import ledger.cli.main
code = 0
try:
    ledger.cli.main.main()
except SystemExit as exc:
    code = exc.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & heavy_names)
print(json.dumps({"exit": code, "heavy": heavy}), file=sys.stderr)
"""


def _run(args: list[str], heavy: tuple[str, ...] = HEAVY) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, json.dumps(args), json.dumps(heavy)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return json.loads(done.stderr.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('startup') / 'books.db'}"
    result = _run(["--db", url, "init"])
    assert result == {"exit": 0, "heavy": []}
    return url


def test_importing_the_cli_imports_no_chain_or_plotting_library() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, ledger.cli.main, ledger.chain;"
            "print(sorted({m.split('.')[0] for m in sys.modules}))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    loaded = set(json.loads(done.stdout.replace("'", '"')))
    assert loaded.isdisjoint(HEAVY), loaded & set(HEAVY)


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["asset", "list"],
        ["asset", "add", "USDT", "--decimals", "6"],
        ["account", "list", "--book", "main"],
        ["balances", "--book", "nosuch"],
        ["verify"],
        ["export", "--book", "nosuch"],
        ["nav", "BTC3L"],
        ["holders", "BTC3L"],
        ["product", "--help"],
        ["simulate", "--help"],
        ["chain", "--help"],
        ["verify", "--help"],
    ],
    ids=" ".join,
)
def test_a_non_chain_command_imports_no_chain_or_plotting_library(
    args: list[str], sqlite_db: str
) -> None:
    result = _run(["--db", sqlite_db, *args])
    assert result["heavy"] == [], result
    assert result["exit"] in (0, 2), result  # refusals (unknown book/product) are fine here


def test_the_holder_address_needs_no_chain_client() -> None:
    """`holders` shows mirror addresses: computing one loads eth-hash only, not web3."""
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from ledger.chain import book_address_of;"
            "print(book_address_of('alice'));"
            "print(sorted({m.split('.')[0] for m in sys.modules}))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    address, modules = done.stdout.splitlines()
    assert address == "0xE23462d2E5e599e6a1Eb259CcdC8c6c98Da0BAbf"
    assert set(json.loads(modules.replace("'", '"'))).isdisjoint(HEAVY)


def test_a_chain_command_still_loads_its_client(sqlite_db: str, tmp_path: Path) -> None:
    """The lazy imports are really reached: `chain status` (no node running) loads them."""
    result = _run(["--db", sqlite_db, "chain", "status", "--chain-dir", str(tmp_path)])
    assert result["exit"] == 0, result
    assert "eth_account" in result["heavy"], result


def test_the_lazy_keccak_agrees_with_the_domain_and_eth_utils() -> None:
    """holders.py hashes with eth-hash, the domain by hand: one function, two speeds."""
    import os

    from eth_utils import keccak as eth_keccak
    from eth_utils import to_checksum_address as eth_checksum

    from ledger.chain import holders
    from ledger.domain.fund.keccak import checksum_address, keccak256

    assert holders.keccak(b"").hex() == (
        "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    for size in (0, 1, 42, 135, 136, 137, 300):
        data = os.urandom(size)
        assert holders.keccak(data) == keccak256(data) == eth_keccak(data)
    for _ in range(50):
        address = "0x" + os.urandom(20).hex()
        spelled = holders.to_checksum_address(address.upper().replace("0X", "0x"))
        assert spelled == checksum_address(address) == eth_checksum(address)
        assert holders.is_checksum_address(spelled)
        assert not holders.is_checksum_address(spelled.swapcase().replace("0X", "0x")) or (
            spelled[2:].isdigit()
        )


KERNEL_HEAVY = ("alembic", "sqlmodel", "pydantic")
"""What a kernel read command does not import either (about 0.4 s of start-up together): the
migrations are for `init`, the models for the table definitions and the entry JSON of `post`."""


@pytest.mark.parametrize("args", [["asset", "list"], ["balances"], ["history", "cash"]])
def test_a_kernel_read_imports_no_migration_tool_or_models(sqlite_db: str, args: list[str]) -> None:
    result = _run(["--db", sqlite_db, *args], KERNEL_HEAVY)
    assert result["heavy"] == [], result
