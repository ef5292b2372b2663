"""Alembic migrations for every Bayport table (one linear history, revision ids NNNN_noun)."""
