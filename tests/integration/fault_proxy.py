"""A small fault-injecting proxy in front of the local cluster's kube-apiserver.

Design (kept deliberately simple): the proxy listens on plain HTTP at 127.0.0.1:<free port>
and forwards to the real apiserver over HTTPS, verifying it with the cluster's CA and
authenticating with the kubeconfig's client certificate. Clients (the modules and helm) get a
kubeconfig whose server is ``http://127.0.0.1:<port>`` and whose user has a dummy bearer token
(kubernetes.core requires some credential with a host); the proxy drops ``Authorization``
and the upstream request is made as the kubeconfig's admin user. No certificate has to be
generated, nothing leaves 127.0.0.1.

Rules: ``proxy.inject(status, method=..., path=regex, count=N, retry_after=S, agent=substr)``
answers the next N matching requests with ``status`` (a Kubernetes Status body; 429 carries
``Retry-After``) instead of forwarding them. ``proxy.injected`` counts what was injected per
rule, ``proxy.requests`` logs (method, path, status) of everything seen.
"""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import ssl
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import yaml

HOP_HEADERS = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
               "transfer-encoding", "upgrade", "authorization", "host", "content-length"}


class Rule:
    def __init__(self, status, method=None, path=None, count=1, retry_after=None, agent=None):
        self.status = status
        self.method = method.upper() if method else None
        self.path = re.compile(path) if path else None
        self.remaining = count
        self.retry_after = retry_after
        self.agent = agent
        self.injected = 0

    def matches(self, method, path, agent):
        if self.remaining <= 0:
            return False
        if self.method and self.method != method:
            return False
        if self.path and not self.path.search(path):
            return False
        if self.agent and self.agent.lower() not in (agent or "").lower():
            return False
        return True


def _write_data(dirpath: Path, name: str, data_b64: str | None, path: str | None) -> str:
    if path:
        return path
    target = dirpath / name
    target.write_bytes(base64.b64decode(data_b64))
    return str(target)


class FaultProxy:
    def __init__(self, kubeconfig: str | Path):
        cfg = yaml.safe_load(Path(kubeconfig).read_text())
        ctx_name = cfg.get("current-context")
        ctx = next(c["context"] for c in cfg["contexts"] if c["name"] == ctx_name) if ctx_name else cfg["contexts"][0]["context"]
        cluster = next(c["cluster"] for c in cfg["clusters"] if c["name"] == ctx["cluster"])
        user = next(u["user"] for u in cfg["users"] if u["name"] == ctx["user"])
        self._tmp = tempfile.TemporaryDirectory(prefix="fault-proxy-")
        tmp = Path(self._tmp.name)
        upstream = urlsplit(cluster["server"])
        self.upstream_host, self.upstream_port = upstream.hostname, upstream.port or 443
        ca = _write_data(tmp, "ca.crt", cluster.get("certificate-authority-data"), cluster.get("certificate-authority"))
        cert = _write_data(tmp, "client.crt", user.get("client-certificate-data"), user.get("client-certificate"))
        key = _write_data(tmp, "client.key", user.get("client-key-data"), user.get("client-key"))
        self.ssl_context = ssl.create_default_context(cafile=ca)
        self.ssl_context.load_cert_chain(cert, key)
        self.rules: list[Rule] = []
        self.requests: list[tuple[str, str, int]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # ---- rules
    def inject(self, status, method=None, path=None, count=1, retry_after=None, agent=None) -> Rule:
        rule = Rule(status, method, path, count, retry_after, agent)
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self):
        with self.lock:
            self.rules = []

    @property
    def injected(self) -> int:
        return sum(r.injected for r in self.rules)

    def _take_rule(self, method, path, agent):
        with self.lock:
            for rule in self.rules:
                if rule.matches(method, path, agent):
                    rule.remaining -= 1
                    rule.injected += 1
                    return rule
        return None

    # ---- lifecycle
    def start(self) -> "FaultProxy":
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self._tmp.cleanup()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def write_kubeconfig(self, path: str | Path, token: str = "fault-proxy-dummy-token") -> str:
        cfg = {
            "apiVersion": "v1", "kind": "Config", "current-context": "proxy",
            "clusters": [{"name": "proxy", "cluster": {"server": self.url}}],
            "users": [{"name": "proxy", "user": {"token": token}}],
            "contexts": [{"name": "proxy", "context": {"cluster": "proxy", "user": "proxy"}}],
        }
        Path(path).write_text(yaml.safe_dump(cfg))
        return str(path)

    # ---- the handler
    def _handler_class(self):
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                method = self.command
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                path_only = self.path.split("?")[0]
                rule = proxy._take_rule(method, path_only, self.headers.get("User-Agent"))
                if rule is not None:
                    self._inject(rule, path_only)
                    with proxy.lock:
                        proxy.requests.append((method, path_only, rule.status))
                    return
                try:
                    conn = http.client.HTTPSConnection(proxy.upstream_host, proxy.upstream_port,
                                                       context=proxy.ssl_context, timeout=300)
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                    if body is not None:
                        headers["Content-Length"] = str(len(body))
                    conn.request(method, self.path, body=body, headers=headers)
                    resp = conn.getresponse()
                except (OSError, http.client.HTTPException) as exc:
                    # upstream down: behave like a refused/broken connection, not like an answer
                    with proxy.lock:
                        proxy.requests.append((method, path_only, 0))
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                with proxy.lock:
                    proxy.requests.append((method, path_only, resp.status))
                self.send_response_only(resp.status, resp.reason)
                for k, v in resp.getheaders():
                    if k.lower() not in HOP_HEADERS:
                        self.send_header(k, v)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    while True:
                        chunk = resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536)
                        if not chunk:
                            break
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                except OSError:
                    self.close_connection = True
                finally:
                    conn.close()

            def _inject(self, rule, path):
                reason = {409: "Conflict", 429: "TooManyRequests"}.get(rule.status, "InternalError")
                message = {409: "Operation cannot be fulfilled: the object has been modified (injected by fault_proxy)",
                           429: "Too many requests, please try again later (injected by fault_proxy)"}.get(
                    rule.status, "injected by fault_proxy")
                body = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                                   "message": message, "reason": reason, "code": rule.status}).encode()
                self.send_response_only(rule.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if rule.retry_after is not None:
                    self.send_header("Retry-After", str(rule.retry_after))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _handle

        return Handler
