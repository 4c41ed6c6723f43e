"""The terminal front: chat in a terminal, interactive or scripted."""
