"""Project error types. Each carries the process exit code the CLIs use (DESIGN.md: 1 data, 2 usage/config)."""

from __future__ import annotations


class GoproError(Exception):
    """Base class: a problem the user can fix, reported as one line without a traceback."""

    exit_code = 1


class DataError(GoproError):
    """Bad or missing data: strict rejects, inspect mismatches, nothing to do, corrupt shards."""

    exit_code = 1


class UsageError(GoproError):
    """Bad command-line usage or paths that do not fit the expected layout."""

    exit_code = 2


class ConfigError(UsageError):
    """pipeline.yaml or a --set override does not fit the schema; the message names the dotted key."""

    exit_code = 2
