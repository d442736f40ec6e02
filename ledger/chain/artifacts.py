"""Load the compiled contract (ABI + bytecode) from the committed `contracts_abi/` folder.

The artifacts are produced by `node scripts/compile_contracts.js` (pinned solc-js, standard-JSON
input, settings recorded in the file); a test recompiles and checks they are current.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ledger.errors import Reason, Rejected

ENV_ABI_DIR = "TOKEN_LEDGER_CONTRACTS_ABI"
TOKEN_CONTRACT = "LedgerShareToken"


@dataclass(frozen=True, slots=True)
class Artifact:
    """One compiled contract."""

    name: str
    abi: tuple[dict[str, Any], ...]
    bytecode: str
    deployed_bytecode: str
    compiler_version: str


def abi_dir() -> Path:
    """Return the folder holding the artifacts: $TOKEN_LEDGER_CONTRACTS_ABI, else the repo's."""
    override = os.environ.get(ENV_ABI_DIR)
    return Path(override) if override else Path(__file__).resolve().parents[2] / "contracts_abi"


@functools.cache
def load_artifact(name: str = TOKEN_CONTRACT) -> Artifact:
    """Return the artifact `name` from `abi_dir()`, or refuse when it is missing."""
    path = abi_dir() / f"{name}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise Rejected(Reason.CHAIN, f"contract artifact {path} is missing") from exc
    return Artifact(
        name=data["contractName"],
        abi=tuple(data["abi"]),
        bytecode=data["bytecode"],
        deployed_bytecode=data["deployedBytecode"],
        compiler_version=data["compiler"]["version"],
    )
