"""The abcflax command line (installed as ``abcflax_cli``; the console script is ``abcflax``)."""
