"""Command line: ``python -m local_sagemaker serve|credentials|wait``.

``serve [--host 127.0.0.1] [--port 4570] [--data-dir .local_sagemaker]`` runs the runtime until
SIGINT/SIGTERM. Requests must be signed with the data dir's key pair (generated on first start),
or with a fixed pair given by ``--access-key-id``/``--secret-access-key`` (or
``LOCAL_SAGEMAKER_ACCESS_KEY_ID``/``LOCAL_SAGEMAKER_SECRET_ACCESS_KEY``). Host names other than
loopback ones are served only when given by ``--allowed-host`` (repeatable) or
``LOCAL_SAGEMAKER_ALLOWED_HOSTS`` (comma-separated).

``credentials [--data-dir .local_sagemaker]`` prints that key pair as the AWS CLI's
``credential_process`` JSON. ``wait [--url http://127.0.0.1:4570] [--timeout 30]`` exits 0 once
the runtime's health route answers, 1 if it did not within the timeout (for Makefiles and
scripts).
"""

import argparse
import logging
import os
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from werkzeug.serving import WSGIRequestHandler, make_server

from local_sagemaker.config import DEFAULT_PORT, RuntimeConfig
from local_sagemaker.credentials import resolve_key_pair
from local_sagemaker.server import HEALTH_PATH, build_runtime

log = logging.getLogger("local_sagemaker")


def wait_until_ready(url: str, timeout: float) -> bool:
    """True once ``GET <url>/_local/health`` answers 200, False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url.rstrip("/") + HEALTH_PATH, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    return False


def serve(config: RuntimeConfig) -> None:
    """Serve until SIGINT or SIGTERM, then end the runtime's child processes."""
    runtime = build_runtime(config)

    class RequestHandler(WSGIRequestHandler):
        # A client that stops sending mid-request loses its connection instead of a thread.
        timeout = config.limits.socket_timeout_seconds

    server = make_server(
        config.host, config.port, runtime.app, threaded=True, request_handler=RequestHandler
    )

    def stop(signum, frame):
        log.info("signal %s: shutting down", signum)
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info(
        "local SageMaker runtime serving on %s (data in %s)", config.endpoint_url, config.data_dir
    )
    try:
        server.serve_forever()
    finally:
        runtime.shutdown()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local_sagemaker", description=__doc__.split("\n")[0]
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser("serve", help="run the local SageMaker runtime")
    serve_parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default loopback)"
    )
    serve_parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    serve_parser.add_argument("--data-dir", type=Path, default=Path(".local_sagemaker"))
    serve_parser.add_argument("--access-key-id", help="serve with this fixed access key id")
    serve_parser.add_argument("--secret-access-key", help="... and this secret access key")
    serve_parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        help="a Host name to serve besides loopback ones (repeatable)",
    )
    credentials_parser = commands.add_parser(
        "credentials", help="print the runtime's key pair as credential_process JSON"
    )
    credentials_parser.add_argument("--data-dir", type=Path, default=Path(".local_sagemaker"))
    wait_parser = commands.add_parser("wait", help="wait until a runtime answers its health route")
    wait_parser.add_argument("--url", default=f"http://127.0.0.1:{DEFAULT_PORT}")
    wait_parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    if args.command == "wait":
        ready = wait_until_ready(args.url, args.timeout)
        if not ready:
            print(
                f"no local SageMaker runtime answered at {args.url} within {args.timeout} s",
                file=sys.stderr,
            )
        return 0 if ready else 1
    if args.command == "credentials":
        print(resolve_key_pair(args.data_dir).credential_process_output())
        return 0
    try:
        key_pair = resolve_key_pair(args.data_dir, args.access_key_id, args.secret_access_key)
    except ValueError as error:
        parser.error(str(error))
    environment_hosts = os.environ.get("LOCAL_SAGEMAKER_ALLOWED_HOSTS", "").split(",")
    config = RuntimeConfig(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        key_pair=key_pair,
        allowed_hosts=tuple(args.allowed_host + environment_hosts),
    )
    serve(config)
    return 0
