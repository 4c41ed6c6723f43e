"""Contracts every layer shares: config, the chat model, messages, knowledge, background work, text."""
