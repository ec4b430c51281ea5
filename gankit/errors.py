"""The one exception type for user mistakes, and how its messages name an option.

Anything raised as GankitError is the user's to fix (a bad flag, a missing file, a corrupt
dataset): the CLI prints its message on one line and exits non-zero, without a traceback.
Every other exception is a bug in gankit and keeps its traceback.

A message names the fix in the words of whoever made the call: `--resume` to a user of the
command line, `resume=True` to a Python caller. The command line says so once, in
gankit.cli.main (`speaking_cli`); everything else is a Python call.
"""

from __future__ import annotations

import contextlib
import difflib
import re
from contextvars import ContextVar
from typing import Any, Iterable, Iterator

_CLI: ContextVar[bool] = ContextVar("gankit_cli", default=False)


class GankitError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""


@contextlib.contextmanager
def speaking_cli() -> Iterator[None]:
    """Within the block, option() names options as command-line flags."""
    token = _CLI.set(True)
    try:
        yield
    finally:
        _CLI.reset(token)


_NAME = object()


def option(name: str, value: Any = _NAME) -> str:
    """An option as the caller writes it, `name` being the field's name (underscores):

        option("lr_d")                  --lr-d               lr_d
        option("resume", True)          --resume             resume=True
        option("out", "NEW_FOLDER")     --out NEW_FOLDER     out=NEW_FOLDER
        option("out", "runs/try")       --out runs/try       out='runs/try'

    on the command line and in Python. A value in capitals is a placeholder, written as is."""
    cli = _CLI.get()
    flag = "--" + name.replace("_", "-") if cli else name
    if value is _NAME:
        return flag
    if isinstance(value, bool):
        return (flag if value else "--no-" + name.replace("_", "-")) if cli else f"{name}={value}"
    if cli:
        return f"{flag} {value}"
    placeholder = isinstance(value, str) and value.replace("_", "").isupper()
    return f"{name}={value if placeholder or not isinstance(value, str) else repr(value)}"


def first_line(e: BaseException, limit: int = 160) -> str:
    """The gist of an exception for a one-line message: its first line, without gloo's
    [source/file.cc:123] prefix, or its type's name when it says nothing."""
    text = re.sub(r"^\[[^\]]*\]\s*", "", str(e).strip())
    return (text.splitlines()[0].strip() if text else type(e).__name__)[:limit]


def did_you_mean(value: Any, names: Iterable[str]) -> str:
    """' (did you mean dcgan?)' when one of `names` is close to `value`, else ''."""
    close = difflib.get_close_matches(str(value), [str(n) for n in names], n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""
