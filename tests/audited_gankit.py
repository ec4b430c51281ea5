"""The real `gankit` command under an audit hook, for tests/test_distributed.py.

torchrun starts this file in place of `-m gankit`; it runs gankit.cli.main unchanged, and
Python's audit hooks (sys.addaudithook, PEP 578) report every file the process opens for
writing, creates, renames, links or deletes. Those under $AUDIT_ROOT are written, when
the command ends, to $AUDIT_LOG/rank<RANK>.txt (one line each), so the test can check
that only rank 0 touched the run folder.
"""

import os
import sys

from gankit.cli import main

ROOT = os.path.realpath(os.environ["AUDIT_ROOT"])
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
CHANGES = {"os.mkdir", "os.rename", "os.remove", "os.rmdir", "os.link", "os.symlink",
           "os.truncate", "os.chmod", "shutil.copyfile", "shutil.move", "shutil.rmtree"}
seen: list[str] = []
recording = True


def hook(event: str, args: tuple) -> None:
    if not recording:
        return
    if event == "open":
        path, mode, flags = args
        writes = any(c in mode for c in "wax+") if isinstance(mode, str) else bool(flags & WRITE_FLAGS)
        paths = [path] if writes else []
    elif event in CHANGES:   # renames and links: both names
        paths = args[:2] if event in ("os.rename", "os.link", "os.symlink", "shutil.copyfile",
                                      "shutil.move") else args[:1]
    else:
        return
    for path in paths:
        if isinstance(path, (str, bytes, os.PathLike)):
            full = os.path.realpath(os.fsdecode(path))
            if full.startswith(ROOT):
                seen.append(f"{event} {full}")


sys.addaudithook(hook)
try:
    code = main(sys.argv[1:])
finally:
    recording = False
    with open(os.path.join(os.environ["AUDIT_LOG"], f"rank{os.environ.get('RANK', 0)}.txt"), "w") as f:
        f.write("".join(line + "\n" for line in seen))
sys.exit(code)
