"""User-facing errors: one line that names the thing (file, field, flag, action) and what to do about it.

The CLI prints an :class:`OreoError` as a single red line and exits with status 2; library users catch it like any
other exception. Programming errors stay ordinary exceptions with tracebacks.
"""


class OreoError(Exception):
    """A problem with the user's input (data path, dataset field, model directory, option value)."""


class DataNotFoundError(OreoError, FileNotFoundError):
    """A data file or folder the user pointed at does not exist or has the wrong layout."""


class SchemaError(OreoError, ValueError):
    """A dataset or file lacks a field the caller needs, or a field has the wrong type."""
