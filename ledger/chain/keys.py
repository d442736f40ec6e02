"""The operator key that owns the mirror contract: loaded, used to sign, never shown.

Sources, first match wins:

- `TOKEN_LEDGER_OPERATOR_KEY`: a hex private key (0x...), e.g. from a secret store;
- `TOKEN_LEDGER_OPERATOR_KEYSTORE`: path of an eth-account encrypted keystore (JSON v3), with
  its password in `TOKEN_LEDGER_OPERATOR_PASSWORD` or in the file named by
  `TOKEN_LEDGER_OPERATOR_PASSWORD_FILE`;
- only when the caller allows it (a local Anvil started by `token-ledger chain up`, chain id
  31337): account 0 of Anvil's public test mnemonic, which guards nothing of value.

A key of Anvil's public mnemonic is refused on any chain id but 31337, however it was given
(`require_key_fits_chain`; every transaction the mirror signs goes through it): its private
key is published, so on any other chain whoever reads Anvil's docs owns the mirror.

The key never leaves this module as text: `Operator` has no attribute holding it in hex and its
repr shows the address only.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.errors import Reason, Rejected

ENV_KEY = "TOKEN_LEDGER_OPERATOR_KEY"
ENV_KEYSTORE = "TOKEN_LEDGER_OPERATOR_KEYSTORE"
ENV_PASSWORD = "TOKEN_LEDGER_OPERATOR_PASSWORD"
ENV_PASSWORD_FILE = "TOKEN_LEDGER_OPERATOR_PASSWORD_FILE"

ANVIL_MNEMONIC = "test test test test test test test test test test test junk"
"""Anvil's public test mnemonic: its keys are published, so it may be committed."""
ANVIL_CHAIN_ID = 31337
ANVIL_PUBLIC_ACCOUNTS = 20  # accounts of the mnemonic refused off chain id 31337


class Operator:
    """The signer of every mirror transaction; shows its address, never its key."""

    __slots__ = ("_account", "source")

    def __init__(self, account: LocalAccount, source: str) -> None:
        self._account = account
        self.source = source

    @property
    def address(self) -> str:
        return str(self._account.address)

    def sign(self, tx: Mapping[str, Any]) -> bytes:
        """Return the raw signed transaction bytes of `tx`."""
        return bytes(self._account.sign_transaction(dict(tx)).raw_transaction)

    def __repr__(self) -> str:
        return f"Operator(address={self.address}, source={self.source})"

    __str__ = __repr__


def anvil_dev_operator(index: int = 0) -> Operator:
    """Return account `index` of Anvil's public test mnemonic (local test chains only)."""
    Account.enable_unaudited_hdwallet_features()
    account = Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{index}")
    return Operator(account, source="anvil-test-mnemonic")


@functools.cache
def anvil_public_addresses() -> frozenset[str]:
    """Return the addresses of the first ANVIL_PUBLIC_ACCOUNTS accounts of Anvil's mnemonic."""
    Account.enable_unaudited_hdwallet_features()
    return frozenset(
        str(Account.from_mnemonic(ANVIL_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}").address)
        for i in range(ANVIL_PUBLIC_ACCOUNTS)
    )


def require_key_fits_chain(operator: Operator, chain_id: int) -> None:
    """Refuse an operator holding one of Anvil's published keys on a chain other than 31337."""
    if chain_id != ANVIL_CHAIN_ID and operator.address in anvil_public_addresses():
        raise Rejected(
            Reason.CHAIN,
            f"the operator key ({operator.source}, {operator.address}) is one of Anvil's public"
            f" test keys: refused on chain id {chain_id} (only on {ANVIL_CHAIN_ID})",
        )


def load_operator(
    env: Mapping[str, str] | None = None,
    *,
    allow_dev_key: bool = False,
    chain_id: int | None = None,
) -> Operator:
    """Return the operator from the environment (see the module docstring), else refuse.

    With `chain_id`, also refuse one of Anvil's public keys unless it is 31337.
    """
    env = os.environ if env is None else env
    operator = _from_env(env)
    if operator is not None:
        if chain_id is not None:
            require_key_fits_chain(operator, chain_id)
        return operator
    if allow_dev_key:
        return anvil_dev_operator()
    raise Rejected(
        Reason.CHAIN,
        f"no operator key: set {ENV_KEY}, or {ENV_KEYSTORE} with {ENV_PASSWORD}"
        f" or {ENV_PASSWORD_FILE}",
    )


def _from_env(env: Mapping[str, str]) -> Operator | None:
    if env.get(ENV_KEY):
        try:
            return Operator(Account.from_key(env[ENV_KEY].strip()), source=ENV_KEY)
        except (ValueError, TypeError) as exc:
            # Never echo the value: only say which variable is malformed.
            raise Rejected(Reason.BAD_INPUT, f"{ENV_KEY} is not a valid private key") from exc
    if env.get(ENV_KEYSTORE):
        return _from_keystore(Path(env[ENV_KEYSTORE]), env)
    return None


def _from_keystore(path: Path, env: Mapping[str, str]) -> Operator:
    if env.get(ENV_PASSWORD_FILE):
        password = Path(env[ENV_PASSWORD_FILE]).read_text(encoding="utf-8").rstrip("\n")
    elif ENV_PASSWORD in env:
        password = env[ENV_PASSWORD]
    else:
        raise Rejected(Reason.CHAIN, f"{ENV_KEYSTORE} needs {ENV_PASSWORD} or {ENV_PASSWORD_FILE}")
    try:
        keyfile = json.loads(path.read_text(encoding="utf-8"))
        key = Account.decrypt(keyfile, password)
    except (OSError, ValueError) as exc:
        raise Rejected(
            Reason.CHAIN, f"cannot open keystore {path}: wrong password or bad file"
        ) from exc
    return Operator(Account.from_key(key), source=f"keystore:{path.name}")


def write_keystore(
    path: Path, *, private_key: bytes, password: str, iterations: int | None = None
) -> str:
    """Encrypt `private_key` into an eth-account keystore at `path`; return its address.

    `iterations` is the scrypt work factor (eth-account's strong default when None; tests
    pass a small power of two to stay fast).
    """
    keyfile = Account.encrypt(private_key, password, iterations=iterations)
    path.write_text(json.dumps(keyfile), encoding="utf-8")
    os.chmod(path, 0o600)
    return str(Account.from_key(private_key).address)
