"""An HTTP proxy in front of a real server that fails as object stores do, for the storage tests.

Each request is forwarded (with its ``Range``) to the upstream server, except that a share of them
is answered ``503`` and a share has its connection dropped halfway through the body. Which ones is
drawn from the seed, the request (method, path, range) and how many times it was asked before, not
from the order requests arrive in: a client that sends many at once gets the same faults on every
run. No request fails more than ``max_in_a_row`` times in a row, so the client's retries (more than
that) always get through and the tests are not flaky. ``delay_s``
holds every response back, as an object store's first byte is.
"""

from __future__ import annotations

import http.client
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FaultyProxy:
    def __init__(self, upstream_port: int, *, unavailable: float = 0.0, dropped: float = 0.0, delay_s: float = 0.0,
                 max_in_a_row: int = 2, seed: int = 0):
        self.upstream_port, self.unavailable, self.dropped, self.delay_s = upstream_port, unavailable, dropped, delay_s
        self.max_in_a_row = max_in_a_row
        self.seed = seed
        self._lock = threading.Lock()
        self._streak: dict[tuple, int] = {}
        self._asked: dict[tuple, int] = {}
        self.counts = {"requests": 0, "503": 0, "dropped": 0}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_HEAD(self):
                proxy._serve(self, body=False)

            def do_GET(self):
                proxy._serve(self, body=True)

        class Server(ThreadingHTTPServer):
            request_queue_size = 1024  # a client's whole window of requests connects at once

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _fault(self, key, body: bool) -> str | None:
        with self._lock:
            self.counts["requests"] += 1
            self._asked[key] = self._asked.get(key, 0) + 1
            draw = random.Random(f"{self.seed}|{key}|{self._asked[key]}").random()
            fault = "503" if draw < self.unavailable else "dropped" if draw < self.unavailable + self.dropped else None
            if fault == "dropped" and not body:
                fault = None  # a HEAD has no body to cut
            if fault and self._streak.get(key, 0) >= self.max_in_a_row:
                fault = None
            self._streak[key] = self._streak.get(key, 0) + 1 if fault else 0
            if fault:
                self.counts[fault] += 1
            return fault

    def _serve(self, handler: BaseHTTPRequestHandler, *, body: bool) -> None:
        if self.delay_s:
            time.sleep(self.delay_s)
        fault = self._fault((handler.command, handler.path, handler.headers.get("Range")), body)
        if fault == "503":
            handler.send_response(503)
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        upstream = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        headers = {k: v for k, v in handler.headers.items() if k.lower() in ("range", "accept-encoding")}
        upstream.request(handler.command, handler.path, headers=headers)
        response = upstream.getresponse()
        data = response.read()
        handler.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("connection", "transfer-encoding", "keep-alive", "server", "date"):
                handler.send_header(name, value)
        handler.end_headers()
        upstream.close()
        if not body:
            return
        if fault == "dropped" and len(data) > 1:
            handler.wfile.write(data[: len(data) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            handler.connection.shutdown(2)  # the connection dies mid-body
            return
        handler.wfile.write(data)
