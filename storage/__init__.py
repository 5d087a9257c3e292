"""Persistence: tables, transactions, migrations and queries. Never imports Matrix."""
