#!/usr/bin/env python3
"""Auth front for registry-test.sh: a loopback proxy to a real registry
that demands credentials the way Docker Hub (bearer tokens from a token
endpoint) or a plain htpasswd registry (Basic) does.

usage: fake-auth-registry.py UPSTREAM_PORT MODE [USER PASS]
MODE: bearer (anonymous tokens), bearer-user (tokens need USER:PASS),
      basic (every /v2/ request needs USER:PASS). Prints its port."""
import base64
import http.server
import socketserver
import sys
import urllib.error
import urllib.request

upstream, mode = int(sys.argv[1]), sys.argv[2]
creds = None
if len(sys.argv) > 4:
    creds = "Basic " + base64.b64encode(
        f"{sys.argv[3]}:{sys.argv[4]}".encode()).decode()
TOKEN = "Bearer tok-0123456789"


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, body=b"", headers=()):
        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        auth = self.headers.get("Authorization")
        port = self.server.server_address[1]
        if self.path.startswith("/token"):
            if mode == "bearer-user" and auth != creds:
                return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}')
            if "scope=repository%3Atest%2Fimg%3Apull" not in self.path:
                return self.reply(400, b"bad scope " + self.path.encode())
            return self.reply(200, b'{"token":"tok-0123456789"}')
        want = creds if mode == "basic" else TOKEN
        if auth != want:
            if mode == "basic":
                ch = 'Basic realm="fake"'
            else:
                ch = (f'Bearer realm="http://127.0.0.1:{port}/token",'
                      f'service="fake",scope="repository:test/img:pull"')
            return self.reply(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}',
                              [("WWW-Authenticate", ch)])
        req = urllib.request.Request(
            f"http://127.0.0.1:{upstream}{self.path}",
            headers={"Accept": self.headers.get("Accept", "*/*")})
        try:
            with urllib.request.urlopen(req) as r:
                body, code, hdrs = r.read(), r.status, r.headers
        except urllib.error.HTTPError as e:
            body, code, hdrs = e.read(), e.code, e.headers
        keep = [(k, hdrs[k]) for k in ("Content-Type", "Docker-Content-Digest")
                if hdrs.get(k)]
        self.reply(code, body, keep)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


srv = Server(("127.0.0.1", 0), Handler)
print(srv.server_address[1], flush=True)
srv.serve_forever()
