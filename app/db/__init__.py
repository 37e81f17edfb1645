"""Database access: engine factory, schema models, error translation, migrations."""
