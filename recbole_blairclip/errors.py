"""Errors the project raises for bad input: each message names the file, line or field and what to do."""


class BlairclipError(Exception):
    """Base class: the CLI prints these as one line and exits with status 2 (no traceback)."""


class ConfigError(BlairclipError, ValueError):
    """A bad configuration: unknown model, broken yaml, unknown key or value."""


class DatasetError(BlairclipError, ValueError):
    """A missing or malformed dataset (atomic files, features, raw review files)."""
