"""`linker adaptor serve`: run a reference lookup adaptor on one dataset until interrupted."""

from __future__ import annotations

import argparse
from typing import Any

from linker.adaptor import (
    DATASET_NAMES,
    DEFAULT_PORTS,
    Fault,
    create_app,
    fault_help,
    load_dataset,
    parse_fault,
    serve,
)
from linker.cli.commands import help_of


def _fault(text: str) -> Fault:
    try:
        return parse_fault(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def register(subparsers: Any) -> None:
    """Add ``adaptor`` with its ``serve`` sub-command."""
    adaptor = subparsers.add_parser("adaptor", help=help_of("adaptor"),
                                    description="Reference lookup adaptors (shop, loyalty, "
                                                "travel) speaking the lookup contract.")
    commands = adaptor.add_subparsers(dest="adaptor_command", metavar="COMMAND")
    commands.required = True
    run = commands.add_parser(
        "serve", help="serve one dataset until interrupted",
        description="Serve one dataset until interrupted (Ctrl+C).",
        epilog=f"Faults (repeatable, combinable): {fault_help()}",
    )
    run.add_argument("--dataset", choices=DATASET_NAMES, required=True)
    run.add_argument("--host", default="127.0.0.1")
    run.add_argument("--port", type=int, help="default: shop 8401, loyalty 8402, travel 8403")
    run.add_argument("--size", type=_positive, help="number of records (default 300)")
    run.add_argument("--signing-key", help="require requests signed with this key")
    run.add_argument("--username", help="require Basic auth with this username")
    run.add_argument("--password", help="require Basic auth with this password")
    run.add_argument("--fault", dest="faults", action="append", type=_fault, default=[],
                     metavar="NAME[:ARG]", help=f"inject a fault: {fault_help()}")
    run.add_argument("--ssl-certfile", help="serve https with this certificate (PEM)")
    run.add_argument("--ssl-keyfile", help="private key of --ssl-certfile (PEM)")
    run.set_defaults(func=run_serve)


def describe(args: argparse.Namespace, port: int, records: int) -> str:
    """The one-line summary printed at start; never includes secrets."""
    scheme = "https" if args.ssl_certfile else "http"
    host = f"[{args.host}]" if ":" in args.host else args.host
    signature = "signature required" if args.signing_key else "no signature required"
    basic = "basic auth on" if (args.username or args.password) else "basic auth off"
    faults = ", ".join(str(f) for f in args.faults) or "none"
    return (f"Serving the {args.dataset} adaptor ({records} records) at "
            f"{scheme}://{host}:{port}/ ({signature}; {basic}; faults: {faults})")


def run_serve(args: argparse.Namespace) -> int:
    """Build the app, print where it serves and what is on, then serve until interrupted."""
    dataset = load_dataset(args.dataset, args.size)
    port = args.port if args.port is not None else DEFAULT_PORTS[args.dataset]
    app = create_app(dataset, signing_key=args.signing_key, username=args.username,
                     password=args.password, faults=args.faults)
    print(describe(args, port, len(dataset.records)), flush=True)
    try:
        serve(app, args.host, port, ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile)
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl+C it handled once it has stopped
        print("Stopped.", flush=True)
    return 0
