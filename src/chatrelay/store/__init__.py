"""Durable conversations: SQLAlchemy 2 async on SQLite or PostgreSQL.

``ConversationStore`` lives in ``chatrelay.store.conversations``; this package
root stays free of SQLAlchemy so the wire (``chatrelay.protocol``) can import
the records without it.
"""
