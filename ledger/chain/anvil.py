"""Start and stop a local Anvil node: free loopback port, deterministic mnemonic, saved state.

The binary comes from npm (`@foundry-rs/anvil`, pinned in package.json; `npm ci` installs it
under node_modules/). The platform binary is run directly, not the node wrapper, so that
stopping the process stops the chain. With a `state_path`, Anvil loads the file if present and
dumps the chain to it on exit (`--state`), so a chain survives `chain down` / `chain up`.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from ledger.chain.keys import ANVIL_CHAIN_ID, ANVIL_MNEMONIC
from ledger.errors import Reason, Rejected

ENV_ANVIL = "TOKEN_LEDGER_ANVIL"
ENV_CHAIN_DIR = "TOKEN_LEDGER_CHAIN_DIR"
DEFAULT_CHAIN_DIR = ".token-ledger-chain"
NODE_FILE = "anvil.json"
STATE_FILE = "anvil-state.json"
LOG_FILE = "anvil.log"
_LISTENING = re.compile(r"Listening on 127\.0\.0\.1:(\d+)")
_PLATFORMS = {
    ("Linux", "x86_64"): "linux-amd64",
    ("Linux", "aarch64"): "linux-arm64",
    ("Darwin", "arm64"): "darwin-arm64",
    ("Darwin", "x86_64"): "darwin-amd64",
}


@dataclass(frozen=True, slots=True)
class AnvilNode:
    """A running Anvil process."""

    pid: int
    port: int
    rpc_url: str
    chain_id: int
    state_path: str | None
    log_path: str


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]


def find_anvil() -> Path | None:
    """Return the anvil binary: $TOKEN_LEDGER_ANVIL, node_modules, then PATH; None if absent."""
    override = os.environ.get(ENV_ANVIL)
    if override:
        return Path(override) if Path(override).is_file() else None
    suffix = _PLATFORMS.get((platform.system(), platform.machine()))
    modules = repo_root() / "node_modules" / "@foundry-rs"
    if suffix and (modules / f"anvil-{suffix}" / "bin" / "anvil").is_file():
        return modules / f"anvil-{suffix}" / "bin" / "anvil"
    found = shutil.which("anvil")
    return Path(found) if found else None


def start_anvil(
    *,
    workdir: Path,
    state_path: Path | None = None,
    chain_id: int = ANVIL_CHAIN_ID,
    gas_limit: int | None = None,
    timeout_s: float = 20.0,  # float-ok: seconds
) -> AnvilNode:
    """Start Anvil on a free loopback port and return once it listens.

    The process runs in its own session so that it outlives the command that started it
    (`chain up`); stop it with `stop_anvil`. Its log goes to `workdir/anvil.log`.
    """
    binary = find_anvil()
    if binary is None:
        raise Rejected(Reason.CHAIN, "anvil not found: run `npm ci` in the repository root")
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / LOG_FILE
    args = [
        str(binary),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--chain-id",
        str(chain_id),
        "--mnemonic",
        ANVIL_MNEMONIC,
    ]
    if state_path is not None:
        args += ["--state", str(state_path)]
    if gas_limit is not None:
        args += ["--gas-limit", str(gas_limit)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=node_env(),
        )
    port = _wait_listening(proc, log_path, timeout_s)
    return AnvilNode(
        pid=proc.pid,
        port=port,
        rpc_url=f"http://127.0.0.1:{port}",
        chain_id=chain_id,
        state_path=str(state_path) if state_path else None,
        log_path=str(log_path),
    )


def node_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """Return the environment Anvil runs with: ours without any TOKEN_LEDGER_* variable.

    The node never needs the operator key or its keystore password, so it never sees them
    (a node's environment is readable by its user through /proc).
    """
    source = os.environ if env is None else env
    return {k: v for k, v in source.items() if not k.startswith("TOKEN_LEDGER_")}


def _wait_listening(
    proc: subprocess.Popen[bytes],
    log_path: Path,
    timeout_s: float,  # float-ok: seconds, not money
) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        match = _LISTENING.search(log_path.read_text(encoding="utf-8", errors="replace"))
        if match:
            return int(match.group(1))
        if proc.poll() is not None:
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-400:]
            raise Rejected(Reason.CHAIN, f"anvil exited with {proc.returncode}: {tail.strip()}")
        time.sleep(0.05)
    proc.kill()
    raise Rejected(Reason.CHAIN, f"anvil did not listen within {timeout_s}s")


def pid_alive(pid: int) -> bool:
    """Return whether process `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True


def stop_anvil(node: AnvilNode, *, timeout_s: float = 20.0) -> None:  # float-ok: seconds
    """Stop `node` with SIGTERM (Anvil dumps its state), then SIGKILL after `timeout_s`."""
    if not pid_alive(node.pid):
        return
    os.kill(node.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        _reap(node.pid)
        if not pid_alive(node.pid):
            return
        time.sleep(0.05)
    os.kill(node.pid, signal.SIGKILL)
    _reap(node.pid)


def _reap(pid: int) -> None:
    # Collect the exit status when the node is our child; harmless otherwise.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def save_node(workdir: Path, node: AnvilNode) -> Path:
    """Record `node` in `workdir/anvil.json` for later `chain down` / `chain status`."""
    path = workdir / NODE_FILE
    path.write_text(json.dumps(asdict(node), indent=2) + "\n", encoding="utf-8")
    return path


def load_node(workdir: Path) -> AnvilNode | None:
    """Return the node recorded in `workdir`, or None when none is recorded."""
    path = workdir / NODE_FILE
    if not path.is_file():
        return None
    return AnvilNode(**json.loads(path.read_text(encoding="utf-8")))


def forget_node(workdir: Path) -> None:
    """Remove the node record of `workdir`."""
    (workdir / NODE_FILE).unlink(missing_ok=True)


def chain_dir(value: str | Path | None = None) -> Path:
    """Return the folder of `chain up`'s node record, state and log.

    The option, else $TOKEN_LEDGER_CHAIN_DIR, else ./.token-ledger-chain.
    """
    return Path(value or os.environ.get(ENV_CHAIN_DIR) or DEFAULT_CHAIN_DIR)


def default_rpc_url(workdir: Path | None = None) -> str | None:
    """Return $TOKEN_LEDGER_RPC_URL, else the URL of the node `chain up` started, else None."""
    from ledger.chain.rpc import ENV_RPC_URL

    if os.environ.get(ENV_RPC_URL):
        return os.environ[ENV_RPC_URL]
    node = load_node(workdir or chain_dir())
    return node.rpc_url if node is not None and pid_alive(node.pid) else None
