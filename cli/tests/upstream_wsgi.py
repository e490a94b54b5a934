"""A WSGI app under the standard library's wsgiref server, for the proxy's tests: CGI-style
servers read headers through the environ, where `X_Vonage_Jti` and `X-Vonage-Jti` would both be
HTTP_X_VONAGE_JTI. It records, as one JSON line per request, the method, the path and every
HTTP_* and CONTENT_* variable it was given, and answers 200."""

import json
import socketserver
import sys
import threading
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

RECORD = sys.argv[1]
lock = threading.Lock()


class QuietHandler(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


def app(environ, start_response):
    length = int(environ.get("CONTENT_LENGTH") or 0)
    environ["wsgi.input"].read(length)
    seen = {k: v for k, v in environ.items() if k.startswith(("HTTP_", "CONTENT_"))}
    entry = {"method": environ["REQUEST_METHOD"], "path": environ["PATH_INFO"], "environ": seen}
    with lock, open(RECORD, "a") as f:
        f.write(json.dumps(entry) + "\n")
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


server = make_server("127.0.0.1", 0, app, ThreadingWSGIServer, QuietHandler)
print("listening", server.server_address[1], flush=True)
server.serve_forever()
