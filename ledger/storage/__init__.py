"""Storage: SQLModel tables, the exact amount column, database guards and raw hot paths."""
