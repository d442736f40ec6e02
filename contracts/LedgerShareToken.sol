// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// @title LedgerShareToken
/// @notice A read-only ERC-20 mirror of one token-ledger fund's share register.
/// @dev The ledger is the single source of truth; only the owner (the ledger's operator key)
/// writes. Holders cannot transfer or approve: a transfer here would make the mirror disagree
/// with the books, so `transfer`, `transferFrom` and `approve` always revert.
///
/// Splits and merges cost O(1) whatever the number of holders: every holder's balance is stored
/// with the split epoch it was last written at, and `balanceOf` applies the ratios of the later
/// epochs one by one, each rounded down, exactly as the ledger does
/// (`new = old * num / den`, rounded down). The ledger's rounding dust goes to its treasury
/// holder; the owner passes that correction in the same `rebase` transaction.
///
/// Every owner write is keyed so that a retry is harmless: `batchAdjust` moves a holder from a
/// stated balance to a new one and reverts if the holder is not at the stated balance; `rebase`
/// applies journal entry `seq` once, as it needs `seq > lastSyncedSeq`.
contract LedgerShareToken is ERC20, Ownable {
    struct Holding {
        uint192 units; // balance at `epoch`, in token base units
        uint64 epoch; // number of rebases applied to `units`
    }

    struct Ratio {
        uint128 num;
        uint128 den;
    }

    uint8 private immutable _shareDecimals;
    mapping(address => Holding) private _holdings;
    Ratio[] private _ratios; // _ratios[e] takes a balance from epoch e to epoch e + 1
    uint256 private _supply;

    /// @notice The last journal sequence number whose state the chain fully mirrors.
    uint64 public lastSyncedSeq;

    uint64[] private _anchorSeqs;
    /// @notice Journal entry hash anchored for a sequence number (zero when none).
    mapping(uint64 => bytes32) public anchorOf;

    event Rebased(uint64 indexed seq, uint128 num, uint128 den, uint64 epoch, uint256 supply);
    event Synced(uint64 indexed seq);
    event Anchored(uint64 indexed seq, bytes32 entryHash);

    error TransfersDisabled();
    error LengthMismatch();
    error BalanceMismatch(address holder, uint256 expected, uint256 actual);
    error StaleSeq(uint64 lastSyncedSeq, uint64 seq);
    error BadRatio(uint128 num, uint128 den);
    error AnchorConflict(uint64 seq, bytes32 anchored, bytes32 given);
    error ZeroHash();

    constructor(string memory name_, string memory symbol_, uint8 decimals_, address owner_)
        ERC20(name_, symbol_)
        Ownable(owner_)
    {
        _shareDecimals = decimals_;
    }

    // ----- ERC-20 reads -----------------------------------------------------------------

    function decimals() public view override returns (uint8) {
        return _shareDecimals;
    }

    function totalSupply() public view override returns (uint256) {
        return _supply;
    }

    /// @notice Balance in base units, with every later split/merge applied (each rounded down).
    function balanceOf(address account) public view override returns (uint256) {
        Holding memory h = _holdings[account];
        return _catchUp(h.units, h.epoch);
    }

    /// @notice Balances of many holders in one call (the mirror reconciles with this).
    function balancesOf(address[] calldata accounts) external view returns (uint256[] memory out) {
        out = new uint256[](accounts.length);
        for (uint256 i = 0; i < accounts.length; ++i) {
            Holding memory h = _holdings[accounts[i]];
            out[i] = _catchUp(h.units, h.epoch);
        }
    }

    /// @notice Number of splits/merges applied so far.
    function epoch() public view returns (uint64) {
        return uint64(_ratios.length);
    }

    /// @notice Ratio (num, den) of the split/merge that ended epoch `e`.
    function ratioAt(uint64 e) external view returns (uint128 num, uint128 den) {
        Ratio memory r = _ratios[e];
        return (r.num, r.den);
    }

    // ----- Transfers are disabled: the ledger is the source of truth --------------------

    function transfer(address, uint256) public pure override returns (bool) {
        revert TransfersDisabled();
    }

    function transferFrom(address, address, uint256) public pure override returns (bool) {
        revert TransfersDisabled();
    }

    function approve(address, uint256) public pure override returns (bool) {
        revert TransfersDisabled();
    }

    // ----- Owner writes -----------------------------------------------------------------

    /// @notice Mint `amounts[i]` base units to `holders[i]`.
    function batchMint(address[] calldata holders, uint256[] calldata amounts) external onlyOwner {
        if (holders.length != amounts.length) revert LengthMismatch();
        for (uint256 i = 0; i < holders.length; ++i) {
            uint256 current = balanceOf(holders[i]);
            _write(holders[i], current, current + amounts[i]);
        }
    }

    /// @notice Burn `amounts[i]` base units from `holders[i]` (reverts on insufficient balance).
    function batchBurn(address[] calldata holders, uint256[] calldata amounts) external onlyOwner {
        if (holders.length != amounts.length) revert LengthMismatch();
        for (uint256 i = 0; i < holders.length; ++i) {
            uint256 current = balanceOf(holders[i]);
            if (current < amounts[i]) revert BalanceMismatch(holders[i], amounts[i], current);
            _write(holders[i], current, current - amounts[i]);
        }
    }

    /// @notice Move each holder from `balancesBefore[i]` to `balancesAfter[i]` (mint or burn),
    /// mirroring the ledger's state as of journal entry `seq`; reverts unless every holder is at
    /// its stated balance, so a replayed batch can never mint twice.
    function batchAdjust(
        uint64 seq,
        address[] calldata holders,
        uint256[] calldata balancesBefore,
        uint256[] calldata balancesAfter
    ) external onlyOwner {
        if (seq < lastSyncedSeq) revert StaleSeq(lastSyncedSeq, seq);
        _adjust(holders, balancesBefore, balancesAfter);
    }

    /// @notice Apply the split/merge of journal entry `seq` to every holder at once
    /// (`new = old * num / den`, rounded down), set the supply to `supplyAfterRatio`, then apply
    /// the ledger's dust corrections, all in this one transaction; marks `seq` as synced.
    function rebase(
        uint64 seq,
        uint128 num,
        uint128 den,
        uint256 supplyAfterRatio,
        address[] calldata holders,
        uint256[] calldata balancesBefore,
        uint256[] calldata balancesAfter
    ) external onlyOwner {
        if (seq <= lastSyncedSeq) revert StaleSeq(lastSyncedSeq, seq);
        if (num == 0 || den == 0) revert BadRatio(num, den);
        _ratios.push(Ratio(num, den));
        _supply = supplyAfterRatio;
        emit Rebased(seq, num, den, epoch(), supplyAfterRatio);
        _adjust(holders, balancesBefore, balancesAfter);
        lastSyncedSeq = seq;
        emit Synced(seq);
    }

    /// @notice Record that the chain mirrors the ledger's state as of journal entry `seq`.
    function markSynced(uint64 seq) external onlyOwner {
        if (seq < lastSyncedSeq) revert StaleSeq(lastSyncedSeq, seq);
        lastSyncedSeq = seq;
        emit Synced(seq);
    }

    /// @notice Anchor the hash of journal entry `seq`; anchoring the same pair again is a no-op.
    function anchor(uint64 seq, bytes32 entryHash) external onlyOwner {
        if (entryHash == bytes32(0)) revert ZeroHash();
        bytes32 anchored = anchorOf[seq];
        if (anchored == entryHash) return;
        if (anchored != bytes32(0)) revert AnchorConflict(seq, anchored, entryHash);
        anchorOf[seq] = entryHash;
        _anchorSeqs.push(seq);
        emit Anchored(seq, entryHash);
    }

    /// @notice Number of anchors written.
    function anchorCount() external view returns (uint256) {
        return _anchorSeqs.length;
    }

    /// @notice Anchors `start .. start + count - 1` in the order they were written.
    function anchorsFrom(uint256 start, uint256 count)
        external
        view
        returns (uint64[] memory seqs, bytes32[] memory hashes)
    {
        uint256 end = Math.min(start + count, _anchorSeqs.length);
        uint256 n = end > start ? end - start : 0;
        seqs = new uint64[](n);
        hashes = new bytes32[](n);
        for (uint256 i = 0; i < n; ++i) {
            seqs[i] = _anchorSeqs[start + i];
            hashes[i] = anchorOf[seqs[i]];
        }
    }

    // ----- Internals --------------------------------------------------------------------

    function _adjust(
        address[] calldata holders,
        uint256[] calldata balancesBefore,
        uint256[] calldata balancesAfter
    ) private {
        if (holders.length != balancesBefore.length || holders.length != balancesAfter.length) {
            revert LengthMismatch();
        }
        for (uint256 i = 0; i < holders.length; ++i) {
            uint256 current = balanceOf(holders[i]);
            if (current != balancesBefore[i]) {
                revert BalanceMismatch(holders[i], balancesBefore[i], current);
            }
            _write(holders[i], current, balancesAfter[i]);
        }
    }

    /// @dev Store `balanceAfter` at the current epoch, update the supply, emit a Transfer.
    function _write(address holder, uint256 balanceBefore, uint256 balanceAfter) private {
        _holdings[holder] = Holding(SafeCast.toUint192(balanceAfter), epoch());
        if (balanceAfter > balanceBefore) {
            uint256 minted = balanceAfter - balanceBefore;
            _supply += minted;
            emit Transfer(address(0), holder, minted);
        } else if (balanceAfter < balanceBefore) {
            uint256 burned = balanceBefore - balanceAfter;
            _supply -= burned;
            emit Transfer(holder, address(0), burned);
        }
    }

    /// @dev Apply the ratios of epochs `from ..` to `units`, each rounded down like the ledger.
    function _catchUp(uint256 units, uint64 from) private view returns (uint256) {
        uint256 n = _ratios.length;
        for (uint256 e = from; e < n && units != 0; ++e) {
            Ratio memory r = _ratios[e];
            units = Math.mulDiv(units, r.num, r.den);
        }
        return units;
    }
}
