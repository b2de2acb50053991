"""Alembic migrations of the Memp Studio schema (see memp_core.store.Store.init)."""
