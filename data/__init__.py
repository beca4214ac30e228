"""Bundled model and example tunes (package data)."""
