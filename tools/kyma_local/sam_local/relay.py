"""A TCP relay from the Docker bridge's gateway address to a loopback service.

The embedded AWS and the MiniMax sandbox listen on 127.0.0.1 only (the sandbox refuses anything
else); containers reach the host at the bridge gateway (see workarounds.BRIDGE).  Each relay
listens on that address only, so nothing is exposed beyond the host and its containers.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading


class _Pipe(socketserver.BaseRequestHandler):
    server: _RelayServer

    def handle(self) -> None:
        try:
            upstream = socket.create_connection(self.server.target, timeout=10)
        except OSError:
            return
        upstream.settimeout(None)
        client = self.request

        def pump(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                for s in (src, dst):
                    with contextlib.suppress(OSError):
                        s.shutdown(socket.SHUT_RDWR)

        back = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        back.start()
        pump(client, upstream)
        back.join()
        upstream.close()


class _RelayServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, listen: tuple[str, int], target: tuple[str, int]) -> None:
        self.target = target
        super().__init__(listen, _Pipe)


class Relay:
    """Relay(host, "http://127.0.0.1:4566").start().url → "http://<host>:<port>" (any free port)."""

    def __init__(self, host: str, target_url: str) -> None:
        hostport = target_url.split("://", 1)[1].split("/", 1)[0]
        target_host, target_port = hostport.rsplit(":", 1)
        self._server = _RelayServer((host, 0), (target_host, int(target_port)))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="relay")

    def start(self) -> Relay:
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
