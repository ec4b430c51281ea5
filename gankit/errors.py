"""The one exception type for user mistakes.

Anything raised as GankitError is the user's to fix (a bad flag, a missing file, a corrupt
dataset): the CLI prints its message on one line and exits non-zero, without a traceback.
Every other exception is a bug in gankit and keeps its traceback.
"""


class GankitError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""
