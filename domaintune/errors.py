"""User-facing errors: one line each, naming what is wrong, where, the value and the fix."""

from __future__ import annotations


class DomaintuneError(Exception):
    """Base class of every error shown to a user; the CLI prints it and exits with code 2."""

    exit_code = 2


class ConfigError(DomaintuneError):
    """A recipe or command-line value is wrong."""


class DataError(DomaintuneError):
    """A data file is missing, malformed or inconsistent with the recipe."""


class ModelError(DomaintuneError):
    """A model cannot be found, loaded or used for the requested task."""


class RunError(DomaintuneError):
    """A run folder is in a state that forbids the requested action."""
