"""token-ledger: immutable, hash-chained double-entry books for leveraged-token funds."""

__version__ = "0.1.0"
