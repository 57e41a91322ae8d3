"""Sample edge apps for the mesh: an occupancy API on one node, a dashboard on another.

``--serve PORT``: answers ``GET /occupancy`` with this node's (simulated) people count as
JSON; any other path is its health check. ``--call NAME:PORT``: every --interval seconds
resolves NAME with the node's mesh DNS (``EDGEWEAVE_DNS``, as the agent gives it), calls
``http://ADDRESS:PORT/occupancy`` and logs the answer — a service on another node, reached by
name. Standard library only.
"""

import argparse
import http.server
import json
import os
import random
import socket
import struct
import sys
import time
import urllib.request

NODE = os.environ.get("EDGEWEAVE_NODE", "?")


def resolve(name: str, server: str) -> str:
    """One A query to the mesh DNS at ``server`` (HOST:PORT)."""
    host, port = server.rsplit(":", 1)
    question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0"
    query = struct.pack("!6H", random.randrange(65536), 0x0100, 1, 0, 0, 0)  # noqa: S311
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(query + question + struct.pack("!2H", 1, 1), (host, int(port)))
        answer = s.recv(512)
    if not struct.unpack("!H", answer[6:8])[0]:
        raise LookupError(f"{name} did not resolve")
    return socket.inet_ntoa(answer[-4:])


def serve(port: int) -> None:
    count = 0

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            nonlocal count
            count = max(0, min(40, count + random.choice((-2, -1, 0, 1, 2))))  # noqa: S311
            body = json.dumps({"node": NODE, "occupancy": count}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    print(f"node={NODE} serving occupancy on port {port}", flush=True)
    http.server.ThreadingHTTPServer(("", port), Handler).serve_forever()


def call(target: str, interval: float) -> None:
    name, port = target.rsplit(":", 1)
    dns = os.environ.get("EDGEWEAVE_DNS", "")
    print(f"node={NODE} calling {name}:{port} by name (mesh DNS {dns})", flush=True)
    while True:
        try:
            address = resolve(name, dns)
            url = f"http://{address}:{port}/occupancy"
            with urllib.request.urlopen(url, timeout=5) as r:  # noqa: S310 - our own http URL
                print(f"node={NODE} {name} -> {address} answered {r.read().decode()}", flush=True)
        except (OSError, LookupError, ValueError) as e:
            print(f"node={NODE} {name}: {e}", flush=True)
        time.sleep(interval)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", type=int, metavar="PORT")
    parser.add_argument("--call", metavar="NAME:PORT")
    parser.add_argument("--interval", type=float, default=2.0)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve)
    elif args.call:
        call(args.call, args.interval)
    else:
        parser.error("give --serve PORT or --call NAME:PORT")
    return 0


if __name__ == "__main__":
    sys.exit(main())
