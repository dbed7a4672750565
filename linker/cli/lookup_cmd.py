"""`linker lookup`: send one lookup to an adaptor and show exactly what went over the wire."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from linker import safejson
from linker.cli.commands import help_of
from linker.contract import (
    CustomerProfile,
    LookupRequest,
    RequestKind,
    autolink_request,
    detailed_request,
    search_request,
)
from linker.lookup import MAX_TIMEOUT_S, AdaptorTarget, Exchange, InvalidTarget, LookupClient
from linker.lookup.exchange import Trigger
from linker.safetext import for_terminal

SIGNING_KEY_ENV = "LINKER_LOOKUP_SIGNING_KEY"
PASSWORD_ENV = "LINKER_LOOKUP_PASSWORD"
MAX_LISTED_RESULTS = 20


def _header(value: str) -> tuple[str, str]:
    name, sep, content = value.partition(":")
    if not sep or not name.strip() or name != name.strip():
        raise argparse.ArgumentTypeError(
            f"expected 'Name: value' (e.g. 'X-Api-Key: abc123'), got {value!r}")
    return name, content.strip()


def _field(value: str) -> tuple[str, str]:
    key, sep, content = value.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. points=100), got {value!r}")
    return key.strip(), content


def _timeout(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
    if math.isnan(seconds) or not 0 < seconds <= MAX_TIMEOUT_S:
        raise argparse.ArgumentTypeError(
            f"must be more than 0 and at most {MAX_TIMEOUT_S:g} seconds (Gladly gives up "
            f"after 15 s), got {value!r}")
    return seconds


def register(subparsers: Any) -> None:
    """Register the ``lookup`` sub-command."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "lookup", help=help_of("lookup"),
        description=__doc__ + " Secrets are masked in all output. Exit status: 0 when the "
        "adaptor answered validly, 1 when it failed or broke the contract, 2 on a usage error.",
    )
    parser.add_argument("url", metavar="URL", help="the adaptor URL, e.g. http://127.0.0.1:8001/")
    kind = parser.add_mutually_exclusive_group(required=True)
    kind.add_argument("--autolink", dest="kind", action="store_const", const=RequestKind.AUTOLINK,
                      help="auto-link request (BASIC; emails/phones as arrays)")
    kind.add_argument("--basic", dest="kind", action="store_const", const=RequestKind.SEARCH,
                      help="basic search request (BASIC; each field a scalar string)")
    kind.add_argument("--detailed", dest="kind", action="store_const", const=RequestKind.DETAILED,
                      help="detailed lookup of a linked record (needs --external-id)")
    query = parser.add_argument_group("query")
    query.add_argument("--email", action="append", default=[], metavar="E",
                       help="email address (repeatable except with --basic)")
    query.add_argument("--phone", action="append", default=[], metavar="P",
                       help="phone number, E.164 preferred (repeatable except with --basic)")
    query.add_argument("--name", help="customer name")
    query.add_argument("--field", action="append", default=[], type=_field, metavar="KEY=VALUE",
                       help="extra search field (--basic) or custom attribute (--detailed)")
    query.add_argument("--external-id", help="the linked externalCustomerId (--detailed)")
    query.add_argument("--customer-id", help="the Gladly customer id sent as query.id")
    add_target_arguments(parser)
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object instead of the human report")
    parser.set_defaults(func=lambda args: run(parser, args))


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """The authentication options and ``--timeout`` that ``build_target`` reads."""
    auth = parser.add_argument_group("authentication")
    auth.add_argument("--signing-key", default=os.environ.get(SIGNING_KEY_ENV, ""), metavar="K",
                      help=f"request signing key (default: ${SIGNING_KEY_ENV})")
    auth.add_argument("--username", default="", metavar="U", help="Basic auth user name")
    auth.add_argument("--password", default=os.environ.get(PASSWORD_ENV, ""), metavar="P",
                      help=f"Basic auth password (default: ${PASSWORD_ENV})")
    auth.add_argument("--realm", default="", metavar="R", help="realm sent in WWW-Authenticate")
    auth.add_argument("--header", action="append", default=[], type=_header,
                      metavar='"Name: value"', help="custom header (repeatable)")
    auth.add_argument("--secret-header", action="append", default=[], metavar="NAME",
                      help="a custom header whose value is secret and masked (repeatable)")
    parser.add_argument("--timeout", type=_timeout, default=5.0, metavar="S",
                        help="seconds to wait for the whole answer (default 5, max 15)")


def build_request(parser: argparse.ArgumentParser, args: argparse.Namespace) -> LookupRequest:
    """The lookup request the options describe; usage errors exit with status 2."""
    fields = dict(args.field)
    if args.kind is RequestKind.AUTOLINK:
        if fields or args.external_id:
            parser.error("--field and --external-id do not apply to --autolink")
        if not args.email and not args.phone:
            parser.error("--autolink needs at least one --email or --phone")
        return autolink_request(args.customer_id or "", args.name, args.email, args.phone)
    if args.kind is RequestKind.SEARCH:
        if args.external_id:
            parser.error("--external-id applies to --detailed only")
        if len(args.email) > 1 or len(args.phone) > 1:
            parser.error("--basic sends one --email and one --phone (search fields are scalars)")
        scalars = {"email": args.email[0] if args.email else None,
                   "phone": args.phone[0] if args.phone else None, "name": args.name}
        query = {k: v for k, v in scalars.items() if v} | fields
        if not query:
            parser.error("--basic needs at least one of --email, --phone, --name or --field")
        return search_request(args.customer_id, query)
    if not args.external_id:
        parser.error("--detailed needs --external-id (the linked record's id)")
    return detailed_request(args.customer_id, args.external_id, args.name, args.email,
                            args.phone, fields)


def build_target(parser: argparse.ArgumentParser, args: argparse.Namespace) -> AdaptorTarget:
    """The adaptor target the options describe; invalid settings exit with status 2."""
    headers: dict[str, str] = {}
    for name, value in args.header:
        if name.lower() in {h.lower() for h in headers}:
            parser.error(f"--header {name!r} is given twice")
        headers[name] = value
    try:
        return AdaptorTarget(
            url=args.url, name="cli", username=args.username, password=args.password,
            realm=args.realm, signing_key=args.signing_key, headers=headers,
            secret_headers=frozenset(args.secret_header), timeout_s=args.timeout,
        )
    except InvalidTarget as exc:
        parser.error(str(exc))


def run(parser: argparse.ArgumentParser, args: argparse.Namespace,
        out: TextIO | None = None) -> int:
    """Send the lookup and print the report; 0 when valid, 1 when failed or non-conforming."""
    request = build_request(parser, args)
    target = build_target(parser, args)
    exchange = LookupClient().lookup_sync(target, request, kind=args.kind, trigger=Trigger.CLI)
    stream = out or sys.stdout
    if args.json:
        stream.write(json.dumps(exchange.as_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        # Adaptor text may carry terminal escape codes: print it as plain text.
        stream.write(for_terminal(render(exchange)))
    return 0 if exchange.ok else 1


def _pretty_body(text: str) -> str:
    try:
        return safejson.dumps_readable(safejson.loads(text))
    except ValueError:
        return text


def _indent(text: str, prefix: str = "  ") -> list[str]:
    return [prefix + line if line else "" for line in text.splitlines()]


def _request_lines(exchange: Exchange) -> list[str]:
    req = exchange.request
    lines = [f"> {req.method} {req.url}   ({exchange.kind.value} lookup, correlation id "
             f"{exchange.correlation_id})"]
    lines += [f"> {name}: {value}" for name, value in req.headers.items()]
    return [*lines, ">", *_indent(req.body, "> ")]


def _response_lines(exchange: Exchange) -> list[str]:
    resp = exchange.response
    timing = f"{exchange.elapsed_ms:.1f} ms"
    if resp is None:
        return [f"< no response ({timing})"]
    cut = ", truncated" if resp.truncated else ""
    lines = [f"< HTTP {resp.status}   ({timing}, {resp.size} bytes{cut})"]
    lines += [f"< {name}: {value}" for name, value in resp.headers.items()]
    return [*lines, "<", *_indent(_pretty_body(resp.body), "< ")]


def _violation_lines(exchange: Exchange) -> list[str]:
    if not exchange.violations:
        return []
    lines = [f"Violations ({len(exchange.violations)}):"]
    width = max(len(v.path) for v in exchange.violations)
    lines += [f"  {v.severity.value:<7}  {v.path:<{width}}  {v.message}"
              for v in exchange.violations]
    return lines


def _result_line(number: int, profile: CustomerProfile) -> str:
    parts = [profile.external_customer_id, profile.name or "(no name)"]
    parts += [e.original for e in profile.emails[:1]]
    parts += [f"{p.original} ({p.type.value})" for p in profile.phones[:1]]
    if profile.custom_attributes:
        parts.append(f"{len(profile.custom_attributes)} attributes")
    if profile.transactions:
        parts.append(f"{len(profile.transactions)} transactions")
    return f"  {number}. " + "  ".join(parts)


def _verdict_lines(exchange: Exchange) -> list[str]:
    if exchange.error is not None:
        lines = [f"Result: FAILED ({exchange.error.kind.value}): {exchange.error.message}"]
    else:
        count = len(exchange.results)
        lines = [f"Result: OK, {count} result{'' if count == 1 else 's'}"]
    shown: Sequence[CustomerProfile] = exchange.results[:MAX_LISTED_RESULTS]
    lines += [_result_line(i, p) for i, p in enumerate(shown, 1)]
    if len(exchange.results) > len(shown):
        lines.append(f"  ... and {len(exchange.results) - len(shown)} more")
    return lines


def render(exchange: Exchange) -> str:
    """The human report of an exchange: request, response, violations, verdict and results."""
    sections = [_request_lines(exchange), _response_lines(exchange),
                _violation_lines(exchange), _verdict_lines(exchange)]
    return "\n\n".join("\n".join(section) for section in sections if section) + "\n"
