"""Outbound text: a reply paced like a person types, and cut to each platform's message size."""
