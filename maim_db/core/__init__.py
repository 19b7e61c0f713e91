"""The Peewee side: the configured databases, the executor, and MaiM's domain models."""
