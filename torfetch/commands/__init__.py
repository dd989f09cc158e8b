"""Subcommands: torfetch log ...; each module has main(argv) -> int."""
