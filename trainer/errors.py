"""The one exception type for mistakes a user can fix; the CLI shows it as a single line."""


class UserError(Exception):
    """Bad input (a file, a field, an option): the message names it and says how to fix it."""
