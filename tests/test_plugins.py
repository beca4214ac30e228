"""The plugin system: built-ins through the hooks, third-party plugins from entry points, ABCFLAX_PLUGINS."""

import importlib.metadata
import sys

import pytest

import abcflax
from abcflax import plugins
from abcflax.errors import UsageError

TUNE = "X:1\nT:Plugin\nM:4/4\nL:1/8\nK:G\nGABc d4|]\n"

THIRD_PARTY = '''
from abcflax.plugins import hookimpl

def write_upper(abc, options):
    return abc.upper().encode()

@hookimpl
def register_exporters(register):
    register("upper", (".up",), write_upper, binary=False, description="ABC in capitals")
    register("mid", (".mid",), write_upper)  # clashes with a built-in: ignored with a warning
'''


@pytest.fixture
def third_party(tmp_path, monkeypatch):
    """An installed plugin 'shout' (entry point in group abcflax) and a broken one."""
    (tmp_path / "shout_plugin.py").write_text(THIRD_PARTY)
    (tmp_path / "broken_plugin.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entries = [importlib.metadata.EntryPoint("shout", "shout_plugin", plugins.GROUP),
               importlib.metadata.EntryPoint("broken", "broken_plugin", plugins.GROUP),
               importlib.metadata.EntryPoint("music21_abc", "abcflax_plugins.music21_abc", plugins.GROUP)]
    monkeypatch.setattr(plugins.importlib.metadata, "entry_points",
                        lambda group=None: [e for e in entries if e.group == group])
    yield
    sys.modules.pop("shout_plugin", None)


def load(monkeypatch, value):
    if value is None:
        monkeypatch.delenv(plugins.ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(plugins.ENV_VAR, value)
    plugins.reset_plugins()
    return {info.name: info for info in abcflax.list_plugins()}


def test_builtins_provide_formats_through_the_hooks():
    found = {info.name: info for info in abcflax.list_plugins()}
    assert found["abcflax_plugins.exporters"].exporters == ("musicxml", "mxl", "mid", "abc")
    assert found["abcflax_plugins.music21_abc"].importers == ("musicxml", "midi")
    assert all(info.builtin for info in found.values())
    assert abcflax.get_plugin_manager().get_plugin("abcflax_plugins.exporters") is not None


def test_tests_load_no_third_party_plugins(third_party):
    """conftest.py sets ABCFLAX_PLUGINS="" for every test: installed plugins stay out."""
    names = {info.name for info in abcflax.list_plugins()}
    assert names == {"abcflax_plugins.exporters", "abcflax_plugins.music21_abc"}


def test_third_party_plugin_loads_and_is_used(third_party, monkeypatch, tmp_path):
    with pytest.warns(UserWarning) as caught:
        found = load(monkeypatch, None)
        assert abcflax.export_bytes(TUNE, "upper").startswith(b"X:1\nT:PLUGIN")
    messages = " ".join(str(w.message) for w in caught)
    assert "'broken' failed to load" in messages and "already provided" in messages
    assert found["shout"].exporters == ("upper",) and not found["shout"].builtin
    assert "music21_abc" not in found  # a stale entry point for a built-in is not loaded twice
    assert abcflax.export_bytes(TUNE, "mid").startswith(b"MThd")  # the built-in kept its name
    out = tmp_path / "tune.up"
    assert abcflax.write_output(TUNE, str(out)) == [str(out)]
    assert out.read_text().startswith("X:1\nT:PLUGIN")


@pytest.mark.parametrize("value,loaded", [("", False), ("other", False), ("shout", True), (" shout ,x", True)])
def test_env_var_limits_third_party_plugins(third_party, monkeypatch, value, loaded):
    assert ("shout" in load(monkeypatch, value)) is loaded
    if not loaded:
        with pytest.raises(UsageError, match="unknown output format 'upper'"):
            abcflax.export_bytes(TUNE, "upper")


def test_unknown_extension_is_a_usage_error():
    with pytest.raises(UsageError, match=r"tune.pdf: unknown output extension '.pdf' \(use one of .*\.abc"):
        abcflax.write_output(TUNE, "tune.pdf")


def test_plugins_command_lists_what_each_provides():
    from click.testing import CliRunner

    from abcflax_cli.common import main_group

    result = CliRunner().invoke(main_group, ["plugins"])
    assert result.exit_code == 0
    assert "abcflax_plugins.exporters (built-in)\n  export: musicxml, mxl, mid, abc" in result.output
    assert "import: musicxml, midi" in result.output
