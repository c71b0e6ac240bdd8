"""The database: models, the store, tag edits and the Alembic migrations."""
