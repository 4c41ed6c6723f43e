"""Conversation memory (Redis or SQLite) and the knowledge store."""
