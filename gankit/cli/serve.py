"""gankit serve: the local web page over a folder of runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import GankitError
from .common import add_device


def add(sub) -> None:
    p = sub.add_parser("serve", help="a web page to watch runs train and use their models",
                       description="Serve a page at http://HOST:PORT that lists the runs under "
                       "ROOT, draws their curves live while they train, plays their sample "
                       "grids, and generates, walks, inpaints, classifies and evaluates with "
                       "their checkpoints. Needs the `serve` extra: pip install "
                       "'gankit[serve]'. Ctrl-C stops it.")
    p.set_defaults(run=run)
    p.add_argument("root", nargs="?", default="runs", metavar="ROOT",
                   help="a folder of run folders (default: runs)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: "
                   "127.0.0.1, this machine only; anything else lets whoever reaches it use it)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument("--open", action="store_true", help="open the page in a browser")
    add_device(p)


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from ..serve.app import create_app
    except ImportError as e:
        raise GankitError(f"gankit serve needs {e.name or 'starlette and uvicorn'}: "
                          "pip install 'gankit[serve]'") from None
    root = Path(args.root)
    if not root.is_dir():
        raise GankitError(f"ROOT {args.root} is not a folder: give the folder that holds "
                          "your run folders (gankit train --out ROOT/NAME)")
    from ..serve.runs import is_run
    if is_run(root):
        raise GankitError(f"ROOT {args.root} is a run folder itself: serve the folder that "
                          f"holds it (gankit serve {root.resolve().parent})")
    if not 0 < args.port < 65536:
        raise GankitError(f"--port must lie between 1 and 65535, got {args.port}")
    from .common import device_for
    device = device_for(args)
    loopback = args.host in ("127.0.0.1", "localhost", "::1")
    if not loopback:
        print(f"gankit: warning: serving on {args.host}: anyone who can reach this address "
              "can see your runs and use your models", file=sys.stderr)
    shown = "127.0.0.1" if args.host in ("0.0.0.0", "::", "") else args.host
    url = f"http://{shown if ':' not in shown else f'[{shown}]'}:{args.port}/"
    app = create_app(root, args.host, args.port, str(device))
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                            timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    _check_free(args.host, args.port)
    print(f"serving {root.resolve()} at {url} (Ctrl-C stops)", flush=True)
    if args.open:
        import threading
        import webbrowser
        threading.Timer(1.0, webbrowser.open, (url,)).start()
    try:
        server.run()
    except KeyboardInterrupt:   # uvicorn shuts down, then passes Ctrl-C on: the normal end
        pass
    print("gankit serve: stopped", file=sys.stderr)
    return 0


def _check_free(host: str, port: int) -> None:
    """One line instead of uvicorn's log when the address cannot be listened on."""
    import socket
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise GankitError(f"--host {host}: {e.strerror}: give an address of this machine "
                          "such as 127.0.0.1") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(address)
        except OSError as e:
            raise GankitError(f"cannot listen on {host}:{port} ({e.strerror}): choose another "
                              "--port, or stop what uses it") from None
