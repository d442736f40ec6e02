"""Helpers shared by the fund tests (tests/test_fund_*.py)."""
