"""Chat commands: the platform-neutral handlers and the one table every front draws from."""
