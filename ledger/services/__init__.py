"""Use cases. Each public call is one database transaction."""
