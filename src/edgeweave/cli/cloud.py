"""`edgeweave cloud serve`: run the cloud process (API, store) until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    cloud = subparsers.add_parser("cloud", help="run and manage the cloud control plane")
    cloud_sub = cloud.add_subparsers(dest="cloud_command", metavar="COMMAND", required=True)
    serve = cloud_sub.add_parser(
        "serve", help="serve the API (TLS, admin token in DATA/admin.yaml)"
    )
    serve.add_argument("--data", type=Path, default=None, help="data dir (default data/cloud)")
    serve.add_argument("--host", default=None, help="listen address (default 127.0.0.1)")
    serve.add_argument(
        "--port", type=int, default=None, help="listen port; 0 picks a free one (default 8443)"
    )
    serve.add_argument(
        "--store",
        default=None,
        metavar="URL",
        help="'' / sqlite:///PATH (default) or postgresql://USER@HOST:PORT/DB",
    )
    serve.add_argument(
        "--hub-port", type=int, default=None, help="edge link port; 0 picks a free one (8444)"
    )
    serve.add_argument("--settings", type=Path, default=None, metavar="FILE", help="settings YAML")
    serve.add_argument(
        "--no-tls", action="store_true", help="plain HTTP (for local experiments only)"
    )
    serve.add_argument(
        "--no-user-config", action="store_true", help="do not write ~/.config/edgeweave/config.yaml"
    )
    serve.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    import asyncio
    import logging

    from edgeweave.cloud.server import CloudEndpoint, serve
    from edgeweave.config.settings import CloudSettings, load_settings

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # one line per connection and disconnection is noise at thousands of nodes
    logging.getLogger("websockets.server").setLevel(logging.WARNING)
    settings = load_settings(
        CloudSettings,
        file=args.settings,
        overrides={
            "data_dir": args.data,
            "server.host": args.host,
            "server.port": args.port,
            "server.hub_port": args.hub_port,
            "store.url": args.store,
            "server.tls": False if args.no_tls else None,
            "write_user_config": False if args.no_user_config else None,
        },
    )

    def ready(endpoint: CloudEndpoint) -> None:
        print(f"edgeweave cloud listening on {endpoint.url}", flush=True)
        config = endpoint.admin_config
        print(f"client config: {config}  (export EDGEWEAVE_CONFIG={config})", flush=True)

    asyncio.run(serve(settings, ready))
    print("edgeweave cloud stopped", file=sys.stderr)
    return 0
