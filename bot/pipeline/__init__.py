"""The message path: the chain and its intake, ordering and journal, the typed exchange, the stages."""
