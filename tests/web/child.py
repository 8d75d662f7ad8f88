"""A tiny stand-in for a smartlock part, for the supervisor tests (run as a script, never imported).

Appends "start NAME" / "stop NAME" to --log, prints a line, optionally serves GET /health on --port
after --ready-after seconds, exits with --code after --exit-after seconds, or ignores SIGTERM.
"""

import argparse
import http.server
import os
import signal
import sys
import threading
import time

parser = argparse.ArgumentParser()
parser.add_argument("--name", required=True)
parser.add_argument("--log", required=True)
parser.add_argument("--port", type=int)
parser.add_argument("--ready-after", type=float, default=0.0)
parser.add_argument("--exit-after", type=float)
parser.add_argument("--code", type=int, default=3)
parser.add_argument("--ignore-term", action="store_true")
parser.add_argument("--lifetime", type=float, default=120.0)
args = parser.parse_args()


def note(text: str) -> None:
    with open(args.log, "a", encoding="utf-8") as handle:
        handle.write(f"{text} {time.time():.3f}\n")


def on_term(signum, frame) -> None:
    if args.ignore_term:
        note(f"ignored {args.name}")
        return
    note(f"stop {args.name}")
    os._exit(0)


signal.signal(signal.SIGTERM, on_term)
note(f"start {args.name} {os.getpid()}")
print(f"hello from {args.name}", flush=True)
if args.port:
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *a) -> None:
            pass

    def serve() -> None:
        time.sleep(args.ready_after)
        http.server.HTTPServer(("127.0.0.1", args.port), Health).serve_forever()

    threading.Thread(target=serve, daemon=True).start()
if args.exit_after is not None:
    time.sleep(args.exit_after)
    print(f"{args.name} failing on purpose", flush=True)
    sys.exit(args.code)
deadline = time.time() + args.lifetime
while time.time() < deadline:
    time.sleep(0.05)
