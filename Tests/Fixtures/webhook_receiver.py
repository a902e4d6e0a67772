#!/usr/bin/env python3
"""A customer's text webhook for tests (S11): verifies X-Switchboard-Signature
as the README tells a receiver to, answers 503 to the first --fail-first
requests on purpose, and appends each request it accepts to --out as one JSON
line: {"ok": signature valid, "body": the JSON body}. Loopback only."""
import argparse, hashlib, hmac, json, time
from http.server import BaseHTTPRequestHandler, HTTPServer

p = argparse.ArgumentParser()
p.add_argument("--port", type=int, required=True)
p.add_argument("--secret", required=True)
p.add_argument("--fail-first", type=int, default=0)
p.add_argument("--out", required=True)
args = p.parse_args()
state = {"seen": 0}


def verify(header, body):
    parts = dict(kv.split("=", 1) for kv in header.split(",") if "=" in kv)
    t = parts.get("t", "")
    if not t.isdigit() or abs(time.time() - int(t)) > 300:
        return False
    expected = hmac.new(args.secret.encode(), t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        state["seen"] += 1
        if state["seen"] <= args.fail_first:
            self.send_response(503)
            self.end_headers()
            return
        ok = verify(self.headers.get("X-Switchboard-Signature", ""), body)
        with open(args.out, "a") as f:
            f.write(json.dumps({"ok": ok, "body": json.loads(body)}) + "\n")
        self.send_response(200 if ok else 401)
        self.end_headers()

    def log_message(self, *a):
        pass


HTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
