#!/usr/bin/env python3
"""Headless Chromium through the control pages, as a person would use them,
over the DevTools protocol (websocket-client from PyPI): open /texts (sent to
sign in), sign in with a wrong key, then with --key, then read the texts table
and the failed filter. Prints one JSON object with what the browser showed."""
import argparse, json, os, shutil, subprocess, tempfile, time, urllib.request
import websocket

p = argparse.ArgumentParser()
p.add_argument("--base", required=True)
p.add_argument("--key", required=True)
p.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
args = p.parse_args()

profile = tempfile.mkdtemp(prefix="sb-chromium-")
flags = ["--headless=new", "--disable-gpu", "--no-first-run", "--no-default-browser-check", "--disable-extensions",
         "--disable-background-networking", "--disable-component-update", "--disable-dev-shm-usage", "--mute-audio",
         "--remote-debugging-port=0", f"--user-data-dir={profile}"]
if os.geteuid() == 0:
    flags.append("--no-sandbox")  # Chromium refuses to run as root with its sandbox
browser = subprocess.Popen([args.chromium, *flags, "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
try:
    port_file = os.path.join(profile, "DevToolsActivePort")
    deadline = time.time() + 30
    while not (os.path.exists(port_file) and open(port_file).read().strip()):
        if time.time() > deadline:
            raise SystemExit("chromium did not start (no DevToolsActivePort)")
        time.sleep(0.1)
    port = open(port_file).read().split()[0]
    pages = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
    ws = websocket.create_connection(next(t for t in pages if t["type"] == "page")["webSocketDebuggerUrl"], timeout=30)
    next_id = [0]

    def call(method, **params):
        next_id[0] += 1
        ws.send(json.dumps({"id": next_id[0], "method": method, "params": params}))
        while True:
            m = json.loads(ws.recv())
            if m.get("id") == next_id[0]:
                if "error" in m:
                    raise SystemExit(f"{method}: {m['error']}")
                return m.get("result", {})

    def js(expr):
        return call("Runtime.evaluate", expression=expr, returnByValue=True)["result"].get("value")

    def settle(path):
        """Waits until the page at `path` has loaded."""
        deadline = time.time() + 15
        while time.time() < deadline:
            if js("document.readyState") == "complete" and js("location.pathname") == path:
                return
            time.sleep(0.05)
        raise SystemExit(f"never reached {path}: at {js('location.href')}")

    def submit(key):
        js(f"document.getElementById('key').value = {json.dumps(key)}; document.querySelector('form').submit()")
        time.sleep(0.3)

    rows = "Array.from(document.querySelectorAll('tbody tr')).map(r => ({id: r.dataset.id, state: r.dataset.state, " \
           "cells: Array.from(r.cells).map(c => c.innerText)}))"
    out = {}
    call("Page.navigate", url=args.base + "/texts")
    settle("/login")
    out["unsigned_redirected_to"] = js("location.pathname")
    submit("sbk_0000000000000000_wrong")
    settle("/login")
    out["wrong_key_alert"] = js("(document.querySelector('[role=alert]') || {}).innerText")
    submit(args.key)
    settle("/texts")
    out["signed_in_at"] = js("location.pathname")
    out["all"] = js(rows)
    call("Page.navigate", url=args.base + "/texts?state=failed")
    settle("/texts")
    out["failed"] = js(rows)
    out["page_text"] = js("document.body.innerText")
    print(json.dumps(out))
finally:
    browser.kill()
    browser.wait()
    shutil.rmtree(profile, ignore_errors=True)
