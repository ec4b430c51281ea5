"""Progress bars for long work: tqdm on the terminal, or a caller's own bar.

The long uses (sampling for an evaluation, training the feature classifier, inpainting,
classifying) take `progress`: True draws tqdm on stderr, False draws nothing, and a
callable is a bar factory called with tqdm's keywords (total, desc, unit). The web page
passes one that reports to the page and raises when the user cancels, so a use is
written once and the page gets progress and cancellation for free.
"""

from __future__ import annotations

from typing import Any, Callable, Union

Progress = Union[bool, Callable[..., Any]]


def bar(progress: Progress, **kw: Any):
    """A bar with tqdm's update/set_postfix/close and context manager."""
    if callable(progress):
        return progress(**kw)
    from tqdm.auto import tqdm
    return tqdm(disable=not progress, leave=False, **kw)
