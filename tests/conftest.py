"""Shared test fixtures."""

import pytest


@pytest.fixture(autouse=True)
def no_installed_plugins(monkeypatch):
    """Tests never load third-party abcflax plugins that happen to be installed (ABCFLAX_PLUGINS="" = none)."""
    monkeypatch.setenv("ABCFLAX_PLUGINS", "")
    from abcflax.plugins import reset_plugins

    reset_plugins()
    yield
    reset_plugins()
