"""A TCP proxy on loopback that the tests switch off and on: a database that becomes
unreachable (connections refused or cut), or hangs (connections accepted, nothing forwarded
either way, as a stuck server or a black-holed network), and comes back, without touching the
real server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator


class SwitchableProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.up = True
        self.hung = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def down(self) -> None:
        """New connections are closed at once; open ones are cut."""
        self.up = False
        with self._lock:
            for sock in self._open:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self._open.clear()

    def hang(self) -> None:
        """Open and new connections stay open; no byte is forwarded until restore()."""
        self.hung = True

    def restore(self) -> None:
        self.up = True
        self.hung = False

    def close(self) -> None:
        self.down()
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            while self.hung and self.up:  # accepted; the server is not reached until restored
                time.sleep(0.05)
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open |= {client, server}
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                while self.hung and self.up:  # held, not forwarded
                    time.sleep(0.05)
                sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._open.discard(sock)
        source.close()  # each pipe closes the socket it reads; the other pipe closes the other


@contextlib.contextmanager
def switchable(host: str, port: int) -> Iterator[SwitchableProxy]:
    proxy = SwitchableProxy((host, port))
    try:
        yield proxy
    finally:
        proxy.close()
