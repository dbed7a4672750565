"""`linker integrations apply|list|test`: integrations as code, never printing secrets.

An apply file holds ``[[integration]]`` tables::

    [[integration]]
    name = "Shop"
    url = "https://shop-adaptor.example.com/lookup"
    username = "linker"
    password_env = "SHOP_PASSWORD"         # or password = "..." (kept when left out)
    signing_key_env = "SHOP_SIGNING_KEY"
    headers = { "X-Tenant" = "eu" }
    headers_env = { "X-Api-Key" = "SHOP_API_KEY" }   # always secret
    secret_headers = []                    # names in `headers` whose values are secret
    search_query_attributes = [{ attribute = "email", label = "Email" }]
    search_results_attributes = [{ attribute = "name", label = "Name" }]
    autolink = true
    autolink_fields = ["email", "mobile"]
    overwrite_existing = false
    timeout_s = 5
    active = true
    max_concurrent_requests = 4            # at most 4 requests in flight, all workers together
    max_requests_per_second = 10           # at most 10 requests started per second

Settings left out take their defaults (no rate cap), except secrets, which are kept as stored.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from collections.abc import Mapping
from typing import Any

from linker.cli.commands import help_of
from linker.cli.common import (
    CLI_ACTOR,
    EXIT_FAILURE,
    EXIT_OK,
    command_group,
    describe_error,
    error,
    print_json,
    print_table,
    read_text_file,
    run_command,
)
from linker.services.context import ServiceContext
from linker.services.errors import ServiceError
from linker.services.integrations import (
    DEFAULT_TIMEOUT_S,
    AttributeSpec,
    HeaderSpec,
    IntegrationService,
    IntegrationSpec,
    IntegrationView,
)

_SECRET_KEYS = ("password", "signing_key")
_KEYS = frozenset({
    "name", "url", "username", "password", "password_env", "realm", "signing_key",
    "signing_key_env", "headers", "headers_env", "secret_headers", "search_query_attributes",
    "search_results_attributes", "autolink", "autolink_fields", "overwrite_existing",
    "timeout_s", "active", "max_concurrent_requests", "max_requests_per_second",
})


class FileProblem(ServiceError):
    """The apply file cannot be used as it is; the message says where and why."""


def register(subparsers: Any) -> None:
    """Add ``integrations`` with its sub-commands."""
    commands = command_group(subparsers, "integrations", help_of("integrations"))

    apply = commands.add_parser(
        "apply", help="create or update integrations by name from a TOML file (idempotent)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    apply.add_argument("file", metavar="FILE.toml")
    apply.set_defaults(func=run_apply)

    listing = commands.add_parser("list", help="list integrations (secrets only as 'set')")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=run_list)

    test = commands.add_parser("test", help="send one probe search to an integration")
    test.add_argument("name")
    test.add_argument("--email", help="email to search for (default: a test address)")
    test.add_argument("--phone", help="phone to search for")
    test.set_defaults(func=run_test)


# -- the apply file ---------------------------------------------------------------------------


def load_specs(text: str, env: Mapping[str, str] | None = None) -> list[IntegrationSpec]:
    """The integration specs of an apply file; FileProblem for anything unusable (bad TOML,
    unknown keys, wrong types, missing environment variables, repeated names)."""
    env = os.environ if env is None else env
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise FileProblem(f"not valid TOML: {exc}") from None
    except RecursionError:
        raise FileProblem("not usable TOML: arrays or tables are nested too deeply; an "
                          "integration file needs only a few levels") from None
    unknown_top = sorted(set(document) - {"integration"})
    if unknown_top:
        raise FileProblem(f"unknown top-level key(s) {', '.join(unknown_top)}; put each "
                          "integration in an [[integration]] table")
    tables = document.get("integration", [])
    if not isinstance(tables, list) or not tables:
        raise FileProblem("no [[integration]] table found")
    specs = [_spec(i, table, env) for i, table in enumerate(tables, start=1)]
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs, start=1):
        key = spec.name.strip().lower()
        if key in seen:
            raise FileProblem(f"integration #{i}: the name {spec.name!r} is also used by "
                              f"integration #{seen[key]}")
        seen[key] = i
    return specs


def _spec(index: int, table: Any, env: Mapping[str, str]) -> IntegrationSpec:
    where = f"integration #{index}"
    if not isinstance(table, dict):
        raise FileProblem(f"{where}: expected a table")
    if isinstance(table.get("name"), str):
        where = f"integration #{index} ({table['name']})"
    unknown = sorted(set(table) - _KEYS)
    if unknown:
        raise FileProblem(f"{where}: unknown key(s) {', '.join(unknown)}; known keys: "
                          f"{', '.join(sorted(_KEYS))}")
    for key in ("name", "url"):
        if key not in table:
            raise FileProblem(f"{where}: {key} is required")
    secrets = {key: _secret(where, table, key, env) for key in _SECRET_KEYS}
    return IntegrationSpec(
        name=_typed(where, table, "name", str, ""),
        url=_typed(where, table, "url", str, ""),
        username=_typed(where, table, "username", str, ""),
        password=secrets["password"],
        realm=_typed(where, table, "realm", str, ""),
        signing_key=secrets["signing_key"],
        headers=_headers(where, table, env),
        search_query_attributes=_attributes(where, table, "search_query_attributes"),
        search_results_attributes=_attributes(where, table, "search_results_attributes"),
        autolink_enabled=_typed(where, table, "autolink", bool, False),
        autolink_fields=tuple(_string_list(where, table, "autolink_fields")),
        overwrite_existing=_typed(where, table, "overwrite_existing", bool, False),
        timeout_s=_number(where, table.get("timeout_s", DEFAULT_TIMEOUT_S)),
        active=_typed(where, table, "active", bool, True),
        max_concurrent_requests=_cap(where, table, "max_concurrent_requests", int),
        max_requests_per_second=_cap(where, table, "max_requests_per_second", float),
    )


def _cap(where: str, table: dict[str, Any], key: str, kind: type[int] | type[float]
         ) -> Any:
    """A rate cap of the file: None when left out (no cap); the service checks the range."""
    if key not in table:
        return None
    value = table[key]
    allowed = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, allowed):
        what = "a whole number" if kind is int else "a number"
        raise FileProblem(f"{where}: {key} must be {what}, got {value!r}; leave it out for no "
                          "cap")
    return kind(value)


def _typed(where: str, table: dict[str, Any], key: str, kind: type[Any], default: Any,
           *, secret: bool = False) -> Any:
    value = table.get(key, default)
    if not isinstance(value, kind):
        # A mistyped secret (or a table that may hold secret headers) is never echoed.
        shown = (f"a {_toml_type(value)}" if secret or isinstance(value, dict | list)
                 else repr(value))
        raise FileProblem(f"{where}: {key} must be {_kind_name(kind)}, got {shown}")
    return value


def _toml_type(value: Any) -> str:
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list",
             dict: "table"}
    return next((name for kind, name in names.items() if isinstance(value, kind)), "value")


def _kind_name(kind: type[Any]) -> str:
    return {str: "a string", bool: "true or false", dict: "a table", list: "a list"}.get(
        kind, kind.__name__)


def _number(where: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FileProblem(f"{where}: timeout_s must be a number of seconds, got {value!r}")
    return float(value)


def _from_env(where: str, key: str, variable: Any, env: Mapping[str, str]) -> str:
    if not isinstance(variable, str) or not variable:
        raise FileProblem(f"{where}: {key} must name an environment variable")
    if variable not in env:
        raise FileProblem(f"{where}: environment variable {variable} ({key}) is not set; "
                          f"export it before applying")
    return env[variable]


def _secret(where: str, table: dict[str, Any], key: str, env: Mapping[str, str]) -> str | None:
    env_key = f"{key}_env"
    if key in table and env_key in table:
        raise FileProblem(f"{where}: give {key} or {env_key}, not both")
    if env_key in table:
        return _from_env(where, env_key, table[env_key], env)
    if key in table:
        return str(_typed(where, table, key, str, "", secret=True))
    return None  # not in the file: keep what is stored


def _string_list(where: str, table: dict[str, Any], key: str) -> list[str]:
    values = _typed(where, table, key, list, [])
    if not all(isinstance(v, str) for v in values):
        raise FileProblem(f"{where}: {key} must be a list of strings")
    return list(values)


def _headers(where: str, table: dict[str, Any], env: Mapping[str, str]) -> tuple[HeaderSpec, ...]:
    plain = _typed(where, table, "headers", dict, {})
    from_env = _typed(where, table, "headers_env", dict, {})
    secret_names = {n.lower() for n in _string_list(where, table, "secret_headers")}
    both = sorted(set(plain) & set(from_env))
    if both:
        raise FileProblem(f"{where}: header(s) {', '.join(both)} given in headers and "
                          "headers_env; keep one")
    unknown = secret_names - {n.lower() for n in plain} - {n.lower() for n in from_env}
    if unknown:
        raise FileProblem(f"{where}: secret_headers names {', '.join(sorted(unknown))}, which "
                          "is not in headers")
    rows = []
    for name, value in plain.items():
        if not isinstance(value, str):
            raise FileProblem(f"{where}: the value of header {name} must be a string")
        rows.append(HeaderSpec(name, value, name.lower() in secret_names))
    for name, variable in from_env.items():
        rows.append(HeaderSpec(name, _from_env(where, f"headers_env.{name}", variable, env),
                               True))
    return tuple(rows)


def _attributes(where: str, table: dict[str, Any], key: str) -> tuple[AttributeSpec, ...]:
    rows = _typed(where, table, key, list, [])
    specs = []
    for i, row in enumerate(rows, start=1):
        if isinstance(row, str):
            row = {"attribute": row}
        if not isinstance(row, dict) or set(row) - {"attribute", "label"} or not all(
                isinstance(v, str) for v in row.values()):
            raise FileProblem(f"{where}: {key} row {i} must be {{attribute = \"...\", "
                              "label = \"...\"}")
        specs.append(AttributeSpec(row.get("attribute", ""), row.get("label", "")))
    return tuple(specs)


# -- commands ---------------------------------------------------------------------------------


def run_apply(args: argparse.Namespace) -> int:
    """Apply every integration of the file; print created / updated (with what) / unchanged.
    Nothing is applied when the file itself has a problem; exit 1 if any integration failed."""
    try:
        specs = load_specs(read_text_file(args.file))
    except ServiceError as exc:
        return error(f"{args.file}: {exc}")

    def body(ctx: ServiceContext) -> int:
        service = IntegrationService(ctx)
        failed = 0
        for spec in specs:
            try:
                result = service.apply(CLI_ACTOR, spec)
            except ServiceError as exc:
                failed += 1
                error(f"{spec.name or '(no name)'}: {describe_error(exc)}")
                continue
            name = result.integration.name
            if result.action == "updated":
                print(f"updated {name}: {', '.join(result.changed)}")
            else:
                print(f"{result.action} {name}")
        return EXIT_FAILURE if failed else EXIT_OK

    return run_command(body)


def _flag(value: bool) -> str:
    return "set" if value else "-"


def _headers_text(view: IntegrationView) -> str:
    return ", ".join(f"{h.name} (secret, set)" if h.secret else h.name for h in view.headers)


def run_list(args: argparse.Namespace) -> int:
    """Print the integrations; secrets appear only as set / not set."""

    def body(ctx: ServiceContext) -> int:
        views = IntegrationService(ctx).list(CLI_ACTOR)
        if args.json:
            print_json([v.display() for v in views])
            return EXIT_OK
        print_table(
            ["name", "active", "url", "autolink", "password", "signing key", "headers",
             "timeout", "rate cap"],
            [(v.name, "yes" if v.active else "no", v.url,
              ",".join(v.autolink_fields) if v.autolink_enabled else "off",
              _flag(v.password_set), _flag(v.signing_key_set), _headers_text(v),
              f"{v.timeout_s:g}s", v.rate_caps_text) for v in views])
        return EXIT_OK

    return run_command(body)


def run_test(args: argparse.Namespace) -> int:
    """Send one probe search and print its outcome; exit 1 when the adaptor failed."""

    def body(ctx: ServiceContext) -> int:
        service = IntegrationService(ctx)
        integration = service.get_by_name(CLI_ACTOR, args.name)
        stored = service.test_connection(CLI_ACTOR, integration.id, email=args.email,
                                         phone=args.phone)
        status = stored.response.status if stored.response else "no response"
        print(f"{integration.name}: HTTP {status} in {stored.elapsed_ms:.0f} ms, "
              f"{stored.result_count} result(s) (exchange {stored.id})")
        for violation in stored.violations:
            print(f"  contract: {violation.path}: {violation.message}")
        if stored.error is not None:
            return error(f"{stored.error.kind.value}: {stored.error.message}")
        return EXIT_OK

    return run_command(body)
