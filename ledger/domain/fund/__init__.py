"""Leveraged-token fund accounting, pure: products, state, NAV math, triggers, entries."""
