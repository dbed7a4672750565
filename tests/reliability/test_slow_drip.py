"""The overall deadline holds against an adaptor that drips its body slower than it.

Over a real loopback socket the reference adaptor sends a 200 body one byte every 200 ms: each
read succeeds well inside the per-read timeout, so only the lookup's overall deadline
(``target.timeout_s`` for connect, send and read together) can end it.
"""

from __future__ import annotations

from linker.adaptor import BackgroundServer, create_app, load_dataset, parse_fault
from linker.contract import search_request
from linker.lookup import AdaptorTarget, LookupClient

DRIP_MS = 200
DEADLINE_S = 1.0
SHOP = load_dataset("shop")
EMAIL = next(r.emails[0] for r in SHOP.records if r.emails)


def test_a_body_dripped_slower_than_the_deadline_is_cut_at_the_deadline() -> None:
    with BackgroundServer(create_app("shop")) as server:
        whole = LookupClient().lookup_sync(AdaptorTarget(server.url + "lookup", name="shop"),
                                           search_request(None, {"email": EMAIL}))
    assert whole.ok and whole.response is not None
    body_bytes = len(whole.response.body.encode())
    assert body_bytes * DRIP_MS / 1000 > 20 * DEADLINE_S  # dripped whole, it would take long

    app = create_app("shop", faults=[parse_fault(f"slow-drip:{DRIP_MS}")])
    with BackgroundServer(app) as server:
        target = AdaptorTarget(server.url + "lookup", name="shop", timeout_s=DEADLINE_S)
        exchange = LookupClient().lookup_sync(target, search_request(None, {"email": EMAIL}))
    assert exchange.error is not None and exchange.error.kind.value == "timeout", exchange.error
    assert exchange.response is not None and exchange.response.status == 200
    received = len(exchange.response.body.encode())
    assert 0 < received < body_bytes  # bytes were arriving (no read timed out), then cut
    # Cut by the deadline, not by the end of the drip (which would be body_bytes * 200 ms).
    assert exchange.elapsed_ms < body_bytes * DRIP_MS / 2
