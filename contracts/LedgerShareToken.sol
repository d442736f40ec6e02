// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {Math} from "@openzeppelin/contracts/utils/math/Math.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";

/// @title LedgerShareToken
/// @notice A read-only ERC-20 mirror of one token-ledger fund's share register.
/// @dev The ledger is the single source of truth; only the owner (the ledger's operator key)
/// writes. Holders cannot transfer or approve: a transfer here would make the mirror disagree
/// with the books, so `transfer`, `transferFrom` and `approve` always revert. Ownership moves
/// in two steps (`transferOwnership`, then `acceptOwnership` by the new key) and cannot be
/// renounced, so the mirror can neither be handed to a mistyped address nor frozen.
///
/// Splits and merges cost O(1) whatever the number of holders: every holder's balance is stored
/// with the split epoch it was last written at, and `balanceOf` applies the ratios of the later
/// epochs one by one, each rounded down, exactly as the ledger does
/// (`new = old * num / den`, rounded down). The supply after a split is computed the ledger's
/// way, `floor(supply * num / den)`; the ledger's rounding dust (what that exceeds the sum of
/// the rounded balances by) goes to its treasury holder, and the owner passes that correction
/// in the same `rebase` transaction.
///
/// Every owner write is keyed so that a retry or a stale sender is harmless:
/// - `batchAdjust` moves a holder from a stated balance to a new one and reverts if the holder
///   is not at the stated balance, and only while `lastSyncedSeq` is the one the sender read;
/// - `rebase` and `markSynced` need both the `lastSyncedSeq` and the `writeCount` (balance
///   writing transactions so far) the sender expects, so they cannot claim a state that a write
///   of somebody else changed in between; `lastSyncedSeq` only increases;
/// - `catchUp` changes no balance (it only re-stores a holder at a later epoch);
/// - `anchor` and `anchorLiabilities` are write-once per seq (anchors also increase with seq).
///
/// Indexers: `Transfer` is emitted for every balance change outside a ratio; `Rebased` for every
/// ratio. Replaying in log order, with `b := floor(b * num / den)` for every balance on
/// `Rebased`, reproduces every `balanceOf`, and their sum is `totalSupply` (docs/chain.md).
contract LedgerShareToken is ERC20, Ownable2Step {
    struct Holding {
        uint192 units; // balance at `epoch`, in token base units
        uint64 epoch; // number of rebases applied to `units`
    }

    struct Ratio {
        uint128 num;
        uint128 den;
    }

    struct LiabilitiesRoot {
        bytes32 rootHash;
        uint256 rootSum;
        uint8 depth;
        bool anchored;
    }

    /// @notice Largest numerator or denominator of a split/merge: the ledger's own bound
    /// (ledger/domain/fund/split.py MAX_RATIO).
    uint128 public constant MAX_RATIO = 1e12;
    /// @notice Largest journal sequence number: the ledger stores seq as a signed 64-bit integer.
    uint64 public constant MAX_SEQ = type(uint64).max >> 1;
    /// @notice Deepest liabilities tree accepted (2^64 leaves).
    uint8 public constant MAX_DEPTH = 64;

    uint8 private immutable _shareDecimals;
    mapping(address => Holding) private _holdings;
    Ratio[] private _ratios; // _ratios[e] takes a balance from epoch e to epoch e + 1
    uint256 private _supply;

    /// @notice The last journal sequence number whose state the chain fully mirrors.
    uint64 public lastSyncedSeq;
    /// @notice Number of successful balance-writing transactions (`batchAdjust`, `rebase`).
    uint64 public writeCount;

    uint64[] private _anchorSeqs;
    /// @notice Journal entry hash anchored for a sequence number (zero when none).
    mapping(uint64 => bytes32) public anchorOf;

    mapping(uint64 => LiabilitiesRoot) private _liabilities;

    event Rebased(uint64 indexed seq, uint128 num, uint128 den, uint64 epoch, uint256 supply);
    event Synced(uint64 indexed seq);
    event Anchored(uint64 indexed seq, bytes32 entryHash);
    event LiabilitiesAnchored(uint64 indexed seq, bytes32 rootHash, uint256 rootSum, uint8 depth);

    error TransfersDisabled();
    error RenounceDisabled();
    error LengthMismatch();
    error BalanceMismatch(address holder, uint256 expected, uint256 actual);
    error StaleSeq(uint64 lastSyncedSeq, uint64 expected);
    error StaleWrites(uint64 writeCount, uint64 expected);
    error BadSeq(uint64 lastSyncedSeq, uint64 seq);
    error BadRatio(uint128 num, uint128 den);
    error AnchorConflict(uint64 seq, bytes32 anchored, bytes32 given);
    error AnchorOutOfOrder(uint64 lastAnchoredSeq, uint64 seq);
    error ZeroHash();
    error LiabilitiesAlreadyAnchored(uint64 seq);
    error BadDepth(uint8 depth);

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
        return _catchUp(h.units, h.epoch, _ratios.length);
    }

    /// @notice Balances of many holders in one call (the mirror reconciles with this).
    function balancesOf(address[] calldata accounts) external view returns (uint256[] memory out) {
        out = new uint256[](accounts.length);
        uint256 n = _ratios.length;
        for (uint256 i = 0; i < accounts.length; ++i) {
            Holding memory h = _holdings[accounts[i]];
            out[i] = _catchUp(h.units, h.epoch, n);
        }
    }

    /// @notice Stored (units, epoch) of many holders: cheap whatever the number of splits since
    /// (the sync applies the later ratios itself, from `ratiosFrom`).
    function holdingsOf(address[] calldata accounts)
        external
        view
        returns (uint256[] memory units, uint64[] memory epochs)
    {
        units = new uint256[](accounts.length);
        epochs = new uint64[](accounts.length);
        for (uint256 i = 0; i < accounts.length; ++i) {
            Holding memory h = _holdings[accounts[i]];
            units[i] = h.units;
            epochs[i] = h.epoch;
        }
    }

    /// @notice (lastSyncedSeq, writeCount, epoch) in one read: what a sync round starts from.
    function syncState() external view returns (uint64, uint64, uint64) {
        return (lastSyncedSeq, writeCount, epoch());
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

    /// @notice Ratios of epochs `start .. start + count - 1` (fewer at the end).
    function ratiosFrom(uint256 start, uint256 count)
        external
        view
        returns (uint128[] memory nums, uint128[] memory dens)
    {
        uint256 end = Math.min(start + count, _ratios.length);
        uint256 n = end > start ? end - start : 0;
        nums = new uint128[](n);
        dens = new uint128[](n);
        for (uint256 i = 0; i < n; ++i) {
            Ratio memory r = _ratios[start + i];
            nums[i] = r.num;
            dens[i] = r.den;
        }
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

    /// @notice Disabled: an owner-less mirror could never follow the ledger again.
    function renounceOwnership() public view override onlyOwner {
        revert RenounceDisabled();
    }

    // ----- Owner writes -----------------------------------------------------------------

    /// @notice Move each holder from `balancesBefore[i]` to `balancesAfter[i]` (mint or burn),
    /// toward the ledger's state as of journal entry `seq`; reverts unless the chain is still
    /// at `expectedSyncedSeq` and every holder is at its stated balance, so neither a replayed
    /// nor a stale batch can write.
    function batchAdjust(
        uint64 expectedSyncedSeq,
        uint64 seq,
        address[] calldata holders,
        uint256[] calldata balancesBefore,
        uint256[] calldata balancesAfter
    ) external onlyOwner {
        _expectSeq(expectedSyncedSeq);
        if (seq < expectedSyncedSeq || seq > MAX_SEQ) revert BadSeq(lastSyncedSeq, seq);
        _adjust(holders, balancesBefore, balancesAfter, true);
        ++writeCount;
    }

    /// @notice Apply the split/merge of journal entry `seq` to every holder at once
    /// (`new = old * num / den`, rounded down), set the supply to `floor(supply * num / den)`,
    /// then apply the ledger's dust corrections, all in this one transaction; marks `seq` as
    /// synced. The corrections move the rounding dust, so they leave the supply as computed.
    function rebase(
        uint64 expectedSyncedSeq,
        uint64 expectedWriteCount,
        uint64 seq,
        uint128 num,
        uint128 den,
        address[] calldata holders,
        uint256[] calldata balancesBefore,
        uint256[] calldata balancesAfter
    ) external onlyOwner {
        _expectSeq(expectedSyncedSeq);
        _expectWrites(expectedWriteCount);
        if (seq <= expectedSyncedSeq || seq > MAX_SEQ) revert BadSeq(lastSyncedSeq, seq);
        if (num == 0 || den == 0 || num == den || num > MAX_RATIO || den > MAX_RATIO) {
            revert BadRatio(num, den);
        }
        _ratios.push(Ratio(num, den));
        _supply = Math.mulDiv(_supply, num, den);
        emit Rebased(seq, num, den, epoch(), _supply);
        _adjust(holders, balancesBefore, balancesAfter, false);
        ++writeCount;
        lastSyncedSeq = seq;
        emit Synced(seq);
    }

    /// @notice Record that the chain mirrors the ledger's state as of journal entry `seq`:
    /// only from `expectedSyncedSeq`, after exactly `expectedWriteCount` balance writes.
    function markSynced(uint64 expectedSyncedSeq, uint64 expectedWriteCount, uint64 seq)
        external
        onlyOwner
    {
        _expectSeq(expectedSyncedSeq);
        _expectWrites(expectedWriteCount);
        if (seq <= expectedSyncedSeq || seq > MAX_SEQ) revert BadSeq(lastSyncedSeq, seq);
        lastSyncedSeq = seq;
        emit Synced(seq);
    }

    /// @notice Re-store each holder at up to `maxEpochs` later epochs; no balance changes.
    /// Lets a holder far behind many splits be caught up in steps that fit a block.
    function catchUp(address[] calldata holders, uint64 maxEpochs) external onlyOwner {
        uint256 n = _ratios.length;
        for (uint256 i = 0; i < holders.length; ++i) {
            Holding memory h = _holdings[holders[i]];
            uint256 to = Math.min(n, uint256(h.epoch) + maxEpochs);
            if (to == h.epoch) continue;
            uint256 units = _catchUp(h.units, h.epoch, to);
            _holdings[holders[i]] = Holding(SafeCast.toUint192(units), uint64(to));
        }
    }

    /// @notice Anchor the hash of journal entry `seq`, write-once; seqs must increase.
    /// Anchoring the same pair again is a no-op (a retry).
    function anchor(uint64 seq, bytes32 entryHash) external onlyOwner {
        if (entryHash == bytes32(0)) revert ZeroHash();
        bytes32 anchored = anchorOf[seq];
        if (anchored == entryHash) return;
        if (anchored != bytes32(0)) revert AnchorConflict(seq, anchored, entryHash);
        uint256 count = _anchorSeqs.length;
        if (seq == 0 || seq > MAX_SEQ) revert AnchorOutOfOrder(0, seq);
        if (count > 0 && seq <= _anchorSeqs[count - 1]) {
            revert AnchorOutOfOrder(_anchorSeqs[count - 1], seq);
        }
        anchorOf[seq] = entryHash;
        _anchorSeqs.push(seq);
        emit Anchored(seq, entryHash);
    }

    /// @notice Anchor the root of the proof-of-liabilities tree at `seq`, once per seq.
    function anchorLiabilities(uint64 seq, bytes32 rootHash, uint256 rootSum, uint8 depth)
        external
        onlyOwner
    {
        if (_liabilities[seq].anchored) revert LiabilitiesAlreadyAnchored(seq);
        if (depth > MAX_DEPTH) revert BadDepth(depth);
        _liabilities[seq] = LiabilitiesRoot(rootHash, rootSum, depth, true);
        emit LiabilitiesAnchored(seq, rootHash, rootSum, depth);
    }

    // ----- Anchor reads -----------------------------------------------------------------

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

    /// @notice The liabilities root anchored at `seq` (all zero when none).
    function liabilitiesRoot(uint64 seq)
        external
        view
        returns (bytes32 rootHash, uint256 rootSum, uint8 depth)
    {
        LiabilitiesRoot memory r = _liabilities[seq];
        return (r.rootHash, r.rootSum, r.depth);
    }

    /// @notice Whether a liabilities root is anchored at `seq` (an empty register's root is
    /// all zero, so `liabilitiesRoot` alone cannot tell).
    function liabilitiesAnchored(uint64 seq) external view returns (bool) {
        return _liabilities[seq].anchored;
    }

    /// @notice Whether the leaf (commitment, units) at `index` with the given path of sibling
    /// hashes and sums recomputes the root anchored at `seq` (docs/proof spec). False, never a
    /// revert, for an unanchored seq, a wrong length or index, a mismatch or a sum overflow.
    function verifyLiability(
        uint64 seq,
        bytes32 commitment,
        uint256 units,
        uint256 index,
        bytes32[] calldata siblingHashes,
        uint256[] calldata siblingSums
    ) external view returns (bool) {
        LiabilitiesRoot memory root = _liabilities[seq];
        if (!root.anchored) return false;
        uint256 depth = root.depth;
        if (siblingHashes.length != depth || siblingSums.length != depth) return false;
        if (index >> depth != 0) return false;
        bytes32 nodeHash = sha256(abi.encodePacked(bytes1(0x01), commitment, units));
        uint256 nodeSum = units;
        for (uint256 k = 0; k < depth; ++k) {
            bytes32 sibHash = siblingHashes[k];
            uint256 sibSum = siblingSums[k];
            (bool ok, uint256 total) = Math.tryAdd(nodeSum, sibSum);
            if (!ok) return false;
            if ((index >> k) & 1 == 1) {
                nodeHash = sha256(abi.encodePacked(bytes1(0x02), sibHash, sibSum, nodeHash, nodeSum));
            } else {
                nodeHash = sha256(abi.encodePacked(bytes1(0x02), nodeHash, nodeSum, sibHash, sibSum));
            }
            nodeSum = total;
        }
        return nodeHash == root.rootHash && nodeSum == root.rootSum;
    }

    // ----- Internals --------------------------------------------------------------------

    function _expectSeq(uint64 expected) private view {
        if (lastSyncedSeq != expected) revert StaleSeq(lastSyncedSeq, expected);
    }

    function _expectWrites(uint64 expected) private view {
        if (writeCount != expected) revert StaleWrites(writeCount, expected);
    }

    function _adjust(
        address[] calldata holders,
        uint256[] calldata balancesBefore,
        uint256[] calldata balancesAfter,
        bool moveSupply
    ) private {
        if (holders.length != balancesBefore.length || holders.length != balancesAfter.length) {
            revert LengthMismatch();
        }
        uint64 e = epoch();
        uint256 n = _ratios.length;
        uint256 supply = _supply;
        for (uint256 i = 0; i < holders.length; ++i) {
            address holder = holders[i];
            Holding memory h = _holdings[holder];
            uint256 current = _catchUp(h.units, h.epoch, n);
            uint256 after_ = balancesAfter[i];
            if (current != balancesBefore[i]) {
                revert BalanceMismatch(holder, balancesBefore[i], current);
            }
            _holdings[holder] = Holding(SafeCast.toUint192(after_), e);
            if (after_ > current) {
                if (moveSupply) supply += after_ - current;
                emit Transfer(address(0), holder, after_ - current);
            } else if (after_ < current) {
                if (moveSupply) supply -= current - after_;
                emit Transfer(holder, address(0), current - after_);
            }
        }
        _supply = supply;
    }

    /// @dev Apply the ratios of epochs `from .. to - 1` to `units`, each rounded down like the
    /// ledger.
    function _catchUp(uint256 units, uint256 from, uint256 to) private view returns (uint256) {
        for (uint256 e = from; e < to && units != 0; ++e) {
            Ratio memory r = _ratios[e];
            units = Math.mulDiv(units, r.num, r.den);
        }
        return units;
    }
}
