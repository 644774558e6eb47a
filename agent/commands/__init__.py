"""CLI sub-commands. Every module here defines `register(subparsers)` and is found automatically."""
