"""The one exception the toolkit raises for problems a user can fix (the CLI prints it as one line)."""

from __future__ import annotations


class TrainingError(Exception):
    """A missing input, tool or GPU, or a model that kept answering nonsense; the message is one line."""
