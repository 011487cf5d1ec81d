"""A loopback TCP proxy that hangs up on some connections before answering.

It reproduces what a client sees when a server closes an idle keep-alive connection just as the
client reuses it (``RemoteDisconnected: Remote end closed connection without response``): the
request is read in full, then the socket is closed with no response. The first ``drop``
connections are treated so; later ones are forwarded to the real server untouched. With
``hang=True`` those connections are held open with no answer instead: a server that hangs.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


class DropProxy:
    def __init__(self, upstream: str, *, drop: int, hang: bool = False) -> None:
        self.upstream_port = urlsplit(upstream).port
        self.remaining_drops = drop
        self.hang = hang
        self._held: list[socket.socket] = []
        self.connections = 0
        self.dropped = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            if self.remaining_drops != 0:
                self.remaining_drops -= 1
                self.dropped += 1
                conn.settimeout(5)
                with contextlib.suppress(OSError):
                    conn.recv(65536)  # the request arrives; no answer ever leaves
                if self.hang:
                    self._held.append(conn)
                else:
                    conn.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port), timeout=10)
            upstream.settimeout(None)
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=_pipe, args=(a, b), daemon=True).start()

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._listener.close()
        for conn in self._held:
            conn.close()


@contextmanager
def drop_proxy(upstream: str, *, drop: int, hang: bool = False) -> Iterator[DropProxy]:
    """A proxy in front of the server at URL ``upstream``; ``drop`` < 0 drops every
    connection."""
    proxy = DropProxy(upstream, drop=drop, hang=hang)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.close()
