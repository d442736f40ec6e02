"""Connect to an Ethereum JSON-RPC endpoint: loopback only, unless explicitly allowed.

The mirror talks to a local test chain. A URL whose host is not a loopback address
(127.0.0.0/8, ::1, localhost) is refused unless the caller passes `allow_remote=True`
(CLI: `--allow-remote-rpc`), so a typo cannot send the operator's transactions elsewhere.
"""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlparse

from web3 import Web3
from web3.exceptions import Web3Exception

from ledger.errors import Reason, Rejected

ENV_RPC_URL = "TOKEN_LEDGER_RPC_URL"
REQUEST_TIMEOUT_S = 60


def is_loopback_url(url: str) -> bool:
    """Return whether `url` is http(s)/ws(s) to a loopback host."""
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https", "ws", "wss"} or not parsed.hostname:
        return False
    host = parsed.hostname
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_rpc_url(url: str, *, allow_remote: bool = False) -> str:
    """Return `url` if it may be used: loopback, or any http(s) URL when `allow_remote`."""
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.hostname:
        raise Rejected(Reason.BAD_INPUT, f"RPC URL {url!r} must be http(s)://host:port")
    if not allow_remote and not is_loopback_url(url):
        raise Rejected(
            Reason.CHAIN,
            f"refusing non-loopback RPC URL {url!r}; pass --allow-remote-rpc to allow it",
        )
    return url


def connect(url: str, *, allow_remote: bool = False) -> Web3:
    """Return a connected Web3 over HTTP to `url`, or refuse with Reason.CHAIN."""
    check_rpc_url(url, allow_remote=allow_remote)
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": REQUEST_TIMEOUT_S}))
    try:
        w3.eth.chain_id  # noqa: B018 - a cheap request that proves the endpoint answers
    except (OSError, Web3Exception) as exc:
        raise Rejected(Reason.CHAIN, f"no Ethereum node answers at {url}", retryable=True) from exc
    return w3


def rpc_url_from(value: str | None, fallback: str | None = None) -> str | None:
    """Return the RPC URL: the option, else $TOKEN_LEDGER_RPC_URL, else `fallback`."""
    return value or os.environ.get(ENV_RPC_URL) or fallback
