"""The SQLAlchemy side: mirrors derived from the Peewee models, engines and sessions."""
