"""`python -m server` runs the `yomitoki` command."""

from server.cli import main

main()
