"""Persistence behind a small repository / unit-of-work seam (SQLAlchemy Core, Alembic)."""
