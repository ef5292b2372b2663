"""Persistence: SQLAlchemy 2 models, the async engine, repositories, Alembic migrations."""
