"""What keeps a local page safe from the browser it serves.

- Host: a request must name the address the server serves. A page on another site can
  rebind its own DNS name to 127.0.0.1 and read the answers as same-origin (DNS
  rebinding); its requests still carry its own name in Host, so they are refused.
- Origin: a POST from a page of another origin (a form or fetch aimed at 127.0.0.1) is
  refused; the browser always sends Origin on such requests.
- Bodies are read up to a byte limit, refused before the rest arrives; pictures are
  measured from their header and refused before a pixel is decoded (an image bomb), in
  memory only, and never unpickled: JSON and PNG/JPEG/GIF/BMP/WebP only.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import socket
from typing import Any

from PIL import Image

from ..errors import GankitError
from ..images import UnreadableImage, open_image

MAX_BODY = 8 * 2**20          # bytes of one request: a drawn canvas or a photo as a data URL
MAX_PIXELS = 4096 * 4096      # of an uploaded picture, checked before decoding
FORMATS = {"PNG", "JPEG", "GIF", "BMP", "WEBP"}
WILDCARDS = {"0.0.0.0", "::", ""}


class Refused(GankitError):
    """A request the server will not serve: answered with `status` and the message."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
        return True
    except ValueError:
        return False


def _is_loopback(name: str) -> bool:
    return name == "localhost" or (_is_ip(name) and ipaddress.ip_address(name.strip("[]")).is_loopback)


class HostCheck:
    """Which Host headers name this server: host:port as served. Bound to loopback, any
    loopback name; bound to every interface, this machine's names and any IP address
    (an IP address cannot be rebound, a DNS name can)."""

    def __init__(self, host: str, port: int):
        self.port = port
        self.wildcard = host in WILDCARDS
        names = {host.lower()}
        if _is_loopback(host) or self.wildcard:
            names |= {"localhost", "127.0.0.1", "[::1]"}
        if self.wildcard:
            names |= {socket.gethostname().lower(), socket.getfqdn().lower()}
        self.names = names

    def allows(self, header: str) -> bool:
        header = header.strip().lower()
        name, _, port = header.rpartition(":") if not header.endswith("]") else (header, "", "")
        if not name or "]" in port:
            name, port = header, ""
        if (int(port) if port.isdigit() else 80) != self.port:
            return False
        return name in self.names or (self.wildcard and _is_ip(name))


class Guard:
    """ASGI middleware: the Host and Origin checks, before any route runs."""

    def __init__(self, app, hosts: HostCheck):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        host = headers.get("host", "")
        if not self.hosts.allows(host):
            return await _plain(send, 421, f"gankit serve does not answer for host {host!r}: "
                                "open the address it printed")
        if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            origin = headers.get("origin")
            if origin is not None and origin != f"http://{host}":
                return await _plain(send, 403, f"refused a {scope['method']} from another "
                                    f"site ({origin})")
            if headers.get("sec-fetch-site") == "cross-site":
                return await _plain(send, 403, "refused a request from another site")
        return await self.app(scope, receive, send)


async def _plain(send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def read_json(request, limit: int = MAX_BODY) -> dict[str, Any]:
    """The request's JSON object, refused (413) once more than `limit` bytes arrive."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise Refused(f"request of {int(declared):,} bytes is over the limit of {limit:,}", 413)
    body, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Refused(f"request is over the limit of {limit:,} bytes", 413)
        body.append(chunk)
    try:
        value = json.loads(b"".join(body) or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise Refused("the request body is not JSON") from None
    if not isinstance(value, dict):
        raise Refused("the request body must be a JSON object")
    return value


def decode_picture(data_url: Any, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """A picture from a data URL (or bare base64), measured before it is decoded."""
    if not isinstance(data_url, str) or not data_url:
        raise Refused("no picture: send it as a data URL (data:image/png;base64,...)")
    payload = data_url.split(",", 1)[1] if data_url.startswith("data:") else data_url
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise Refused("the picture is not valid base64") from None
    try:
        return open_image(raw, check=lambda picture: _measure(picture, max_pixels))
    except UnreadableImage as e:
        if e.too_large:   # Pillow's own, coarser limit, at open
            raise Refused(f"the picture has more than {max_pixels:,} pixels: send a smaller "
                          "one", 413) from None
        if e.damaged:
            raise Refused("the picture is damaged: Pillow could not decode it") from None
        raise Refused("the picture is not an image Pillow can read (PNG, JPEG, GIF, BMP, "
                      "WebP)") from None


def _measure(picture: Image.Image, max_pixels: int) -> None:
    """Refuse a picture by its header: of a type not accepted, or of too many pixels."""
    if picture.format not in FORMATS:
        raise Refused(f"pictures of type {picture.format} are not accepted: send PNG or JPEG")
    w, h = picture.size
    if w * h > max_pixels:
        raise Refused(f"the picture is {w}x{h}, over the limit of {max_pixels:,} pixels: "
                      "send a smaller one", 413)
