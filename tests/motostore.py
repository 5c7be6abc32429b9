"""An object store of its own for a test module or a bench: a moto S3 server on a free loopback port,
in this process. moto keeps its buckets in the process, so a restart on the same port finds them
again, as a real store would; stop() refuses connections, as a store that is down does."""

from __future__ import annotations

from conftest import _free_port


class Store:
    def __init__(self):
        self.port = _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.server = None
        self.start()

    def start(self):
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self):
        self.server.stop()
        # ThreadedMotoServer.stop leaves the socket listening (connections would queue unanswered).
        self.server._server.server_close()
