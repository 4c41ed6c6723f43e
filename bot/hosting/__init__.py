"""Hosting: running the chat platforms in one process, and the OneBot listener's door."""
