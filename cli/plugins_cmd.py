"""abcflax plugins."""

from __future__ import annotations

import click

from .common import cli_errors, require_stdout


@click.command("plugins")
@cli_errors
def plugins_command():
    """List loaded plugins and the export/import formats each provides.

    Third-party plugins come from the entry-point group "abcflax"; ABCFLAX_PLUGINS=name1,name2 limits which
    load (an empty value loads none).
    """
    import abcflax

    require_stdout()  # the list is the result: it went nowhere, exit 0
    for info in abcflax.list_plugins():
        kind = "built-in" if info.builtin else "installed"
        click.echo(f"{info.name} ({kind})")
        if info.exporters:
            click.echo(f"  export: {', '.join(info.exporters)}")
        if info.importers:
            click.echo(f"  import: {', '.join(info.importers)}")
