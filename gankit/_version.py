"""The package version, in a module of its own: gankit/__init__.py imports the API, so the
modules under it that record the version (checkpoints, the feature network) read it here."""

__version__ = "0.1.0"
