"""Helpers for the GUI tests: an in-memory keyring, a quiet monitor, fake notifications."""
