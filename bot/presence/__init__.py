"""Presence beyond answering: an emoji for a short acknowledgement, and speaking first."""
