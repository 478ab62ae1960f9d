"""``python -m qualflow``: the same CLI as the ``qualflow`` command."""

from qualflow.cli import main

main()
