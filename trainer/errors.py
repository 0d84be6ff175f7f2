"""The one exception type for mistakes a user can fix; the CLI shows it as a single line."""


class UserError(Exception):
    """Bad input (a file, a field, an option): the message names it and says how to fix it."""

    exit_code = 1  # the CLI's exit status for it


class Interrupted(UserError):
    """The user pressed Ctrl-C; the message says what was kept."""

    exit_code = 130  # as a shell reports a process ended by SIGINT
