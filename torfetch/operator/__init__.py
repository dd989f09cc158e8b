"""Operator tools: ``torfetch sign`` (publish a repository's signatures into the log) and ``torfetch monitor``."""
