"""Where the service keeps what it is told: records behind an abstract unit of work, with a
SQL implementation (SQLAlchemy Core, Alembic migrations) and one in memory for tests."""
