#!/usr/bin/env python3
"""A customer's text webhook for tests (S11): verifies X-Switchboard-Signature
as the README tells a receiver to, answers 503 to the first --fail-first
requests on purpose, and appends each request it accepts to --out as one JSON
line: {"ok": signature valid, "body": the JSON body}. Loopback only."""
import argparse, hashlib, hmac, json, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--secret", required=True)
p.add_argument("--fail-first", type=int, default=0)
p.add_argument("--out", required=True)
args = p.parse_args()
state = {"seen": 0}
lock = threading.Lock()  # requests are served on threads (bench/texts.sh sends many at once)


def verify(header, body):
    parts = dict(kv.split("=", 1) for kv in header.split(",") if "=" in kv)
    t = parts.get("t", "")
    if not t.isdigit() or abs(time.time() - int(t)) > 300:
        return False
    expected = hmac.new(args.secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver would

    def answer(self, code):
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        with lock:
            state["seen"] += 1
            fail = state["seen"] <= args.fail_first
        if fail:
            self.answer(503)
            return
        ok = verify(self.headers.get("X-Switchboard-Signature", ""), body)
        with lock, open(args.out, "a") as f:
            f.write(json.dumps({"ok": ok, "body": json.loads(body)}) + "\n")
        self.answer(200 if ok else 401)

    def log_message(self, *a):
        pass


ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
