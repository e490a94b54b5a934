"""An upstream for the proxy's tests, in the Python standard library only: it records exactly
what it received (method, path, headers, body bytes) as one JSON line per request, and answers
by path: /status/NNN/... with NNN, /hang/... after 30 s, /slow/... after 1 s, /chunked/... in
chunks, /ambiguous/... framed both by length and by chunks (a response-splitting shape), anything
else 200."""

import base64
import http.server
import json
import sys
import threading
import time

RECORD = sys.argv[1]
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 0
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def handle_any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        entry = {
            "method": self.command,
            "path": self.path,
            "headers": [[k, v] for k, v in self.headers.items()],
            "body": base64.b64encode(body).decode(),
        }
        with lock, open(RECORD, "a") as f:
            f.write(json.dumps(entry) + "\n")
        parts = self.path.split("/")
        status, reply = 200, b"upstream ok"
        if len(parts) > 2 and parts[1] == "status":
            status, reply = int(parts[2]), b"upstream says " + parts[2].encode()
        elif len(parts) > 1 and parts[1].startswith("hang"):
            time.sleep(30)
        elif len(parts) > 1 and parts[1].startswith("slow"):
            time.sleep(1)
        elif len(parts) > 1 and parts[1] in ("chunked", "ambiguous"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            if parts[1] == "ambiguous":
                self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"8\r\nupstream\r\n8\r\n chunked\r\n0\r\n\r\n")
            return
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("X-Upstream", "python")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = do_PUT = handle_any


server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
server.daemon_threads = True
print("listening", server.server_address[1], flush=True)
server.serve_forever()
