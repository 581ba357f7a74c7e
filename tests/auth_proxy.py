"""An authenticating reverse proxy in front of an MLflow server, as production puts one.

Every request must carry ``Authorization: Basic <user:password>`` or ``Bearer <token>``;
anything else is answered 401 and never reaches the server. Authenticated requests are
forwarded (method, path, query, headers, body) and the answer is passed back. Each request is
appended to a JSON-lines log: method, path, the kind of authorization seen (``basic``,
``bearer``, ``none``, ``wrong``) and the status returned, so a test can tell which requests
were authenticated (artifact uploads included) and that no credential other than the expected
one was ever sent.

Run: ``python -m tests.auth_proxy --upstream http://127.0.0.1:5000 --port 5001 --user admin
--password PW --token TOKEN --log requests.jsonl``.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

#: Hop-by-hop headers a proxy must not forward.
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "authorization",
}


class AuthProxy(BaseHTTPRequestHandler):
    """Checks the credentials, forwards, logs (settings are class attributes)."""

    upstream = urlsplit("http://127.0.0.1:5000")
    user = password = token = ""
    log_path = ""
    _log_lock = threading.Lock()
    protocol_version = "HTTP/1.1"

    def _authorization(self) -> str:
        header = self.headers.get("Authorization", "")
        if not header:
            return "none"
        kind, _, value = header.partition(" ")
        if kind.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except ValueError:
                return "wrong"
            return "basic" if (user, password) == (self.user, self.password) else "wrong"
        if kind.lower() == "bearer":
            return "bearer" if value == self.token else "wrong"
        return "wrong"

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _record(self, auth: str, status: int) -> None:
        entry = {"method": self.command, "path": self.path, "auth": auth, "status": status}
        with self._log_lock, open(self.log_path, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")

    def _reply(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _forward(self) -> None:
        body = self._body()
        auth = self._authorization()
        if auth not in ("basic", "bearer"):
            self._record(auth, 401)
            self._reply(401, [("WWW-Authenticate", 'Basic realm="mlflow"')], b"Unauthorized")
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=120)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
            self._record(auth, answer.status)
            self._reply(answer.status, answer.getheaders(), data)
        finally:
            conn.close()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _forward  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the JSON log is enough)
        return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--token", required=True)
    parser.add_argument("--log", required=True)
    args = parser.parse_args()
    AuthProxy.upstream = urlsplit(args.upstream)
    AuthProxy.user, AuthProxy.password, AuthProxy.token = args.user, args.password, args.token
    AuthProxy.log_path = args.log
    ThreadingHTTPServer(("127.0.0.1", args.port), AuthProxy).serve_forever()


if __name__ == "__main__":
    main()
