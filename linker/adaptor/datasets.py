"""Deterministic datasets of the reference adaptor: a shared population and three systems.

Everything derives from a seed, so a given ``(name, size, seed)`` always yields the same records.

**Population.** ``people(size, seed)`` generates ``population_size(size)`` (twice the dataset
size) people, one after another from a single seeded generator. Person *i* is therefore the
same for every population size, so datasets of different sizes built with the same seed share
their people. Every person has a unique personal email (``ana.lopez@example.com``, with a
number after the name for namesakes), a unique work email (``ana.lopez@work.example.com``), a
unique mobile number (US numbers with real area codes, or UK mobiles for about 15 %) and, for
about a third of people, a home landline.

**Datasets.** Each dataset draws its own random subset of the population (seeded by the seed
and the dataset name), so the same person often appears in shop, loyalty and travel with the
same email: that is what a multi-system search groups by. About an eighth of the population is
in no dataset. In every dataset about 8 % of records carry only the person's *work* email (so a
profile holding the personal email matches them by phone only) and another 8 % carry both.

- **shop** (``shop-00042``): customers with MOBILE/HOME phones written in international format
  (``+1 415-234-5678``, so clients must normalise), ORDER transactions with products and
  fulfilments. Every eighth order (``#1005``, ``#1013``, ...) is archived: shown with
  orderStatus ``ARCHIVED`` in DETAILED results, never found by a BASIC order-number search.
  The last ``size // 40`` records (at least one when ``size >= 4``) are *duplicate accounts*:
  each shares the first email of one of the first drawn customers (``duplicate_of`` names it),
  has no phone and at most one order, so searching that email returns two records.
- **loyalty** (``L-000042``): members with tier, points and memberSince custom attributes and
  GENERIC reward-redemption transactions; phones in E.164.
- **travel** (``T-00042``): passengers with ONLY a MOBILE phone (E.164) and FLIGHT
  transactions (confirmationCode, airline, flightNumber, origin, destination, departureAt,
  arrivalAt, status, seat, cabin).

Dates are spread around the fixed ``REFERENCE_TIME`` (not the wall clock) so output never
changes from one day to the next.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, TypeVar

from linker.core.identity import try_normalize_phone

DATASET_NAMES = ("shop", "loyalty", "travel")
DEFAULT_SIZE = 300
DEFAULT_SEED = 7
REFERENCE_TIME = datetime(2025, 10, 1, 12, 0, tzinfo=UTC)
MIN_NAME_QUERY = 3
T = TypeVar("T")

FIRST_NAMES = (
    "Ana", "Ben", "Chloé", "Daniel", "Elena", "Farah", "George", "Hana", "Isaac", "Jun",
    "Kofi", "Laura", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Samuel", "Tara",
    "Umar", "Valentina", "William", "Ximena", "Yusuf", "Zoë", "Aiden", "Beatriz", "Carlos",
    "Dmitri", "Emma", "Felix", "Grace", "Hiroshi", "Ines", "James", "Keiko", "Liam", "Maya",
    "Noah", "Olivia", "Pedro", "Rahul", "Sofia", "Theo", "Uma", "Victor", "Wen", "Yara", "Zane",
)
LAST_NAMES = (
    "Lopez", "Smith", "Nguyen", "Okafor", "Müller", "Garcia", "Kim", "Patel", "Johnson",
    "Rossi", "Cohen", "Silva", "Brown", "Tanaka", "Novak", "O'Brien", "Haddad", "Williams",
    "Jones", "Martin", "Andersen", "Costa", "Dubois", "Ivanova", "Khan", "Larsen", "Moreau",
    "Nakamura", "Osei", "Peña", "Quispe", "Reyes", "Schmidt", "Taylor", "Usman", "Vargas",
    "Walker", "Yilmaz", "Zhang", "Baker", "Clarke", "Davies", "Evans", "Fischer", "Hughes",
)
STREETS = ("Oak", "Maple", "Cedar", "Pine", "Elm", "Lake", "Hill", "Park", "Mission", "Market",
           "Church", "Station", "Mill", "Bridge", "Harbor", "Sunset", "Valley", "Spring")
US_STREET_TYPES = ("St", "Ave", "Blvd", "Rd", "Ln", "Dr")
UK_STREET_TYPES = ("Street", "Road", "Lane", "Close", "Terrace")
# (city, state, zip prefix, area code, airport)
US_CITIES = (
    ("San Francisco", "CA", "941", "415", "SFO"), ("New York", "NY", "100", "212", "JFK"),
    ("Brooklyn", "NY", "112", "718", "JFK"), ("Chicago", "IL", "606", "312", "ORD"),
    ("Boston", "MA", "021", "617", "BOS"), ("Seattle", "WA", "981", "206", "SEA"),
    ("Denver", "CO", "802", "303", "DEN"), ("Austin", "TX", "787", "512", "AUS"),
    ("Los Angeles", "CA", "900", "213", "LAX"), ("Atlanta", "GA", "303", "404", "ATL"),
    ("Miami", "FL", "331", "305", "MIA"), ("Portland", "OR", "972", "503", "PDX"),
    ("Phoenix", "AZ", "850", "602", "PHX"), ("Nashville", "TN", "372", "615", "BNA"),
    ("Minneapolis", "MN", "554", "612", "MSP"),
)
# (city, postcode area, landline prefix after +44, airport)
UK_CITIES = (("London", "N", "207", "LHR"), ("London", "SE", "203", "LHR"),
             ("Manchester", "M", "161", "MAN"))
POSTCODE_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"
UK_MOBILE_PREFIXES = ("7400", "7500", "7712", "7809", "7956", "7387")
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
WORK_DOMAIN = "work.example.com"


@dataclass(frozen=True)
class Person:
    """One generated person of the shared population (index = position in the population)."""

    index: int
    first_name: str
    last_name: str
    email: str
    work_email: str
    mobile: str
    home_phone: str | None
    address: str
    country: str
    city: str
    airport: str

    @property
    def name(self) -> str:
        """Full name, first name first."""
        return f"{self.first_name} {self.last_name}"


@dataclass(frozen=True)
class PhoneEntry:
    """A phone of a record: the text returned on the wire, its type, and its E.164 form."""

    original: str
    type: str
    e164: str


@dataclass(frozen=True)
class Record:
    """One customer record of a dataset.

    ``transactions`` are already in wire shape. ``archived_orders`` holds the order numbers
    (with ``#``) of archived orders: they appear in DETAILED results but a BASIC order-number
    search never finds the record through them. ``duplicate_of`` names the record whose email a
    deliberate duplicate account shares.
    """

    external_customer_id: str
    person_index: int
    name: str
    address: str
    emails: tuple[str, ...]
    phones: tuple[PhoneEntry, ...]
    custom_attributes: Mapping[str, str]
    transactions: tuple[Mapping[str, Any], ...] = ()
    archived_orders: frozenset[str] = frozenset()
    duplicate_of: str | None = None

    def order_numbers(self, include_archived: bool = False) -> list[str]:
        """Order numbers (with ``#``) of the record's orders, archived ones only on request."""
        numbers = [str(t["orderNumber"]) for t in self.transactions if "orderNumber" in t]
        if include_archived:
            return numbers
        return [n for n in numbers if n not in self.archived_orders]

    def basic(self) -> dict[str, Any]:
        """The record as a BASIC result: contact data and custom attributes, no transactions."""
        return {
            "externalCustomerId": self.external_customer_id,
            "name": self.name,
            "address": self.address,
            "emails": [{"original": e} for e in self.emails],
            "phones": [{"original": p.original, "type": p.type} for p in self.phones],
            "customAttributes": dict(self.custom_attributes),
        }

    def detailed(self) -> dict[str, Any]:
        """The record as a DETAILED result: BASIC plus every transaction (archived included)."""
        result = self.basic()
        result["transactions"] = [_deep_copy(t) for t in self.transactions]
        return result


def _deep_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _deep_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_deep_copy(v) for v in value]
    return value


def _order_key(value: str) -> str:
    return value.strip().lstrip("#").strip()


def _name_key(value: str) -> str:
    return " ".join(value.split()).casefold()


@dataclass
class Dataset:
    """A named set of records drawn from ``population``, with lookup indexes.

    Treat it as read-only: ``load_dataset`` caches and shares instances.
    """

    name: str
    records: list[Record]
    population: list[Person]
    seed: int = DEFAULT_SEED
    _by_id: dict[str, Record] = field(init=False, repr=False, compare=False)
    _by_email: dict[str, list[int]] = field(init=False, repr=False, compare=False)
    _by_phone: dict[str, list[int]] = field(init=False, repr=False, compare=False)
    _by_order: dict[str, list[int]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_id = {r.external_customer_id: r for r in self.records}
        self._by_email = {}
        self._by_phone = {}
        self._by_order = {}
        for position, record in enumerate(self.records):
            for email in record.emails:
                self._by_email.setdefault(email.strip().lower(), []).append(position)
            for phone in record.phones:
                self._by_phone.setdefault(phone.e164, []).append(position)
            for number in record.order_numbers():
                self._by_order.setdefault(_order_key(number), []).append(position)

    def get(self, external_customer_id: str) -> Record | None:
        """The record with this id, or None."""
        return self._by_id.get(external_customer_id.strip())

    def search(
        self,
        *,
        emails: Iterable[str] = (),
        phones: Iterable[str] = (),
        order_numbers: Iterable[str] = (),
        name: str | None = None,
    ) -> list[Record]:
        """Records matching ANY given email, phone or order number, in dataset order.

        Emails compare trimmed and lower-cased, phones in E.164 (unparseable ones match
        nothing), order numbers with or without ``#`` and never through archived orders.
        ``name`` (at least 3 characters, case-insensitive, whole or contained) is consulted only
        when no email, phone or order number is given.
        """
        email_list = [e for e in emails if e.strip()]
        phone_list = [p for p in phones if p.strip()]
        order_list = [o for o in order_numbers if _order_key(o)]
        if not (email_list or phone_list or order_list):
            return self._search_name(name or "")
        hits: set[int] = set()
        for email in email_list:
            hits.update(self._by_email.get(email.strip().lower(), ()))
        for phone in phone_list:
            e164 = try_normalize_phone(phone)
            if e164 is not None:
                hits.update(self._by_phone.get(e164, ()))
        for order in order_list:
            hits.update(self._by_order.get(_order_key(order), ()))
        return [self.records[i] for i in sorted(hits)]

    def _search_name(self, name: str) -> list[Record]:
        needle = _name_key(name)
        if len(needle) < MIN_NAME_QUERY:
            return []
        return [r for r in self.records if needle in _name_key(r.name)]

    def members(self) -> dict[int, list[Record]]:
        """Person index -> that person's records in this dataset (duplicates included)."""
        out: dict[int, list[Record]] = {}
        for record in self.records:
            out.setdefault(record.person_index, []).append(record)
        return out

    def duplicate_emails(self) -> set[str]:
        """Emails (lower case) carried by more than one record: searching them is ambiguous."""
        return {email for email, hits in self._by_email.items() if len(hits) > 1}

    def archived_order_numbers(self) -> list[str]:
        """Every archived order number (with ``#``) in the dataset."""
        return [n for r in self.records for n in sorted(r.archived_orders)]


# ---------------------------------------------------------------------------------- population


class _Dice:
    """A seeded generator with cheap draws (``random.randint`` dominates generation time)."""

    def __init__(self, seed: str) -> None:
        self._rng = random.Random(seed)
        self.random = self._rng.random
        self.bits = self._rng.getrandbits
        self.sample = self._rng.sample
        self.paretovariate = self._rng.paretovariate

    def between(self, low: int, high: int) -> int:
        """An integer in [low, high]."""
        return low + int(self.random() * (high - low + 1))

    def pick(self, items: Sequence[T]) -> T:
        """One item of a non-empty sequence."""
        return items[int(self.random() * len(items))]

    def weighted(self, items: Sequence[T], weights: Sequence[int]) -> T:
        """One item, drawn with the given integer weights."""
        roll = self.random() * sum(weights)
        for item, weight in zip(items, weights, strict=True):
            roll -= weight
            if roll < 0:
                return item
        return items[-1]


def population_size(size: int) -> int:
    """Number of people behind a dataset of ``size`` records (twice the size)."""
    return 2 * size


def _ascii(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def _us_exchange(rng: _Dice) -> int:
    while True:
        exchange = rng.between(200, 999)
        if exchange != 555 and exchange % 100 != 11:
            return exchange


def _person(rng: _Dice, index: int, namesakes: dict[str, int], used: set[str]) -> Person:
    first, last = rng.pick(FIRST_NAMES), rng.pick(LAST_NAMES)
    key = f"{_ascii(first)}.{_ascii(last)}"
    namesakes[key] = namesakes.get(key, 0) + 1
    local = key if namesakes[key] == 1 else f"{key}{namesakes[key]}"
    domain = rng.weighted(EMAIL_DOMAINS, (6, 2, 2))
    number = rng.between(1, 2999)
    street = rng.pick(STREETS)
    has_home = rng.random() < 0.35
    if rng.random() < 0.15:
        city, area, landline, airport = rng.pick(UK_CITIES)
        district, sector = rng.between(1, 20), rng.between(1, 9)
        unit = rng.pick(POSTCODE_LETTERS) + rng.pick(POSTCODE_LETTERS)
        postcode = f"{area}{district} {sector}{unit}"
        address = f"{number} {street} {rng.pick(UK_STREET_TYPES)}, {city} {postcode}, UK"
        mobile = _unique(used, lambda: f"+44{rng.pick(UK_MOBILE_PREFIXES)}"
                         f"{rng.between(0, 999999):06d}")
        rest = 10 - len(landline)
        home = _unique(used, lambda: f"+44{landline}{rng.between(0, 10**rest - 1):0{rest}d}")
        country = "GB"
    else:
        city, state, zip3, area_code, airport = rng.pick(US_CITIES)
        address = (f"{number} {street} {rng.pick(US_STREET_TYPES)}, {city}, {state} "
                   f"{zip3}{rng.between(0, 99):02d}")
        mobile = _unique(used, lambda: f"+1{area_code}{_us_exchange(rng)}"
                         f"{rng.between(0, 9999):04d}")
        home = _unique(used, lambda: f"+1{area_code}{_us_exchange(rng)}{rng.between(0, 9999):04d}")
        country = "US"
    return Person(index=index, first_name=first, last_name=last, email=f"{local}@{domain}",
                  work_email=f"{local}@{WORK_DOMAIN}", mobile=mobile,
                  home_phone=home if has_home else None, address=address, country=country,
                  city=city, airport=airport)


def _unique(used: set[str], draw: Callable[[], str]) -> str:
    while True:
        value = draw()
        if value not in used:
            used.add(value)
            return value


@lru_cache(maxsize=16)
def _population(count: int, seed: int) -> tuple[Person, ...]:
    rng = _Dice(f"linker-population:{seed}")
    namesakes: dict[str, int] = {}
    used: set[str] = set()
    return tuple(_person(rng, i, namesakes, used) for i in range(count))


def people(dataset_or_size: Dataset | int = DEFAULT_SIZE, seed: int = DEFAULT_SEED) -> list[Person]:
    """The shared population behind the datasets, for seeding local profiles that overlap them.

    Pass a ``Dataset`` to get the exact population it was drawn from, or a dataset size (with
    the same ``seed`` given to ``load_dataset``) to get ``population_size(size)`` people.
    Person *i* is identical for every size, so the population of the largest dataset covers
    the smaller ones. To build realistic overlaps, use ``Dataset.members()`` (person index ->
    records): a person with no records matches nobody; a record whose emails lack
    ``person.email`` (it carries ``person.work_email`` only) matches a profile holding the
    personal email by phone only; ``Dataset.duplicate_emails()`` lists ambiguous emails.
    Phones of people are E.164 and valid for ``linker.core.identity.normalize_phone``.
    """
    if isinstance(dataset_or_size, Dataset):
        return list(dataset_or_size.population)
    if dataset_or_size < 0:
        raise ValueError(f"size must be at least 0, got {dataset_or_size}")
    return list(_population(population_size(dataset_or_size), seed))


# ------------------------------------------------------------------------------------ helpers


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _past(rng: _Dice, max_days: int) -> datetime:
    return REFERENCE_TIME - timedelta(days=rng.between(1, max_days),
                                      minutes=rng.between(0, 24 * 60 - 1))


def _code(bits: int) -> str:
    return "".join(CONFIRMATION_ALPHABET[(bits >> (5 * i)) & 31] for i in range(6))


def _pick(population: list[Person], count: int, seed: int, name: str) -> list[Person]:
    rng = random.Random(f"linker-dataset:{seed}:{name}")
    return [population[i] for i in rng.sample(range(len(population)), count)]


def _emails(rng: _Dice, person: Person) -> tuple[str, ...]:
    roll = rng.random()
    if roll < 0.08:
        return (person.work_email,)
    if roll < 0.16:
        return (person.email, person.work_email)
    return (person.email,)


def _international(e164: str) -> str:
    if e164.startswith("+1"):
        return f"+1 {e164[2:5]}-{e164[5:8]}-{e164[8:]}"
    return f"+44 {e164[3:7]} {e164[7:]}"


def _money(symbol: str, amount: float) -> str:
    return f"{symbol}{amount:,.2f}"


# --------------------------------------------------------------------------------------- shop

PRODUCTS = (
    ("Linen Shirt", "LS-100", 48.0), ("Canvas Tote", "CT-210", 24.0),
    ("Wool Beanie", "WB-330", 19.5), ("Trail Runner Shoes", "TR-440", 119.0),
    ("Ceramic Mug", "CM-120", 14.0), ("Denim Jacket", "DJ-510", 89.0),
    ("Leather Wallet", "LW-620", 55.0), ("Rain Shell", "RS-730", 135.0),
    ("Cotton Socks (3 pack)", "CS-140", 12.0), ("Yoga Mat", "YM-850", 42.0),
    ("Water Bottle", "WB-160", 22.0), ("Reading Lamp", "RL-970", 64.0),
)
ORDER_STATUSES = ("FULFILLED", "PARTIALLY_FULFILLED", "UNFULFILLED", "CANCELLED", "REFUNDED")
ORDER_STATUS_WEIGHTS = (60, 8, 14, 10, 8)
CARRIERS = {"US": ("UPS", "FedEx", "USPS"), "GB": ("Royal Mail", "DPD")}
FIRST_ORDER_NUMBER = 1001
ARCHIVE_EVERY = 8


class _OrderCounter:
    def __init__(self) -> None:
        self.next = FIRST_ORDER_NUMBER

    def take(self) -> tuple[str, bool]:
        number = self.next
        self.next += 1
        return f"#{number}", (number - FIRST_ORDER_NUMBER) % ARCHIVE_EVERY == ARCHIVE_EVERY - 4


def _product_status(order_status: str, line: int) -> str:
    if order_status == "PARTIALLY_FULFILLED":
        return "FULFILLED" if line == 0 else "UNFULFILLED"
    if order_status in ("FULFILLED", "ARCHIVED"):
        return "FULFILLED"
    return order_status


def _order(rng: _Dice, counter: _OrderCounter, person: Person) -> tuple[dict[str, Any],
                                                                                 bool, float]:
    number, archived = counter.take()
    created = _past(rng, 720)
    status = "ARCHIVED" if archived else rng.weighted(ORDER_STATUSES, ORDER_STATUS_WEIGHTS)
    symbol, currency = ("£", "GBP") if person.country == "GB" else ("$", "USD")
    products = []
    total = 0.0
    items = 0
    for line, (name, sku, price) in enumerate(rng.sample(PRODUCTS, rng.between(1, 3))):
        quantity = rng.weighted((1, 2, 3), (7, 2, 1))
        total += price * quantity
        items += quantity
        products.append({
            "id": f"{number[1:]}-{line + 1}", "name": name, "sku": sku,
            "quantity": str(quantity), "unitPrice": _money(symbol, price),
            "total": _money(symbol, price * quantity), "status": _product_status(status, line),
        })
    order: dict[str, Any] = {
        "type": "ORDER", "orderNumber": number, "orderStatus": status,
        "orderTotal": _money(symbol, total), "currencyCode": currency, "createdAt": _iso(created),
        "orderLink": f"https://shop.example.com/admin/orders/{number[1:]}",
        "itemCount": str(items), "products": products, "fulfillments": [],
    }
    shipped = [p["id"] for p in products if p["status"] == "FULFILLED"]
    if shipped:
        carrier = rng.pick(CARRIERS[person.country])
        carrier_slug = carrier.replace(" ", "").lower()
        tracking = "1Z" + f"{rng.bits(64):016X}"
        delivered = created + timedelta(days=rng.between(2, 7))
        order["fulfillments"] = [{
            "productIds": shipped, "carrier": carrier, "trackingNumber": tracking,
            "trackingUrl": f"https://track.example.com/{carrier_slug}/{tracking}",
            "status": "DELIVERED" if delivered < REFERENCE_TIME else "IN_TRANSIT",
            "estimatedDeliveryDate": delivered.date().isoformat(),
        }]
    spent = total if status in ("FULFILLED", "PARTIALLY_FULFILLED", "ARCHIVED") else 0.0
    return order, archived, spent


def _shop_record(rng: _Dice, position: int, person: Person, counter: _OrderCounter,
                 orders: int, emails: tuple[str, ...], phones: tuple[PhoneEntry, ...],
                 duplicate_of: str | None = None) -> Record:
    built = [_order(rng, counter, person) for _ in range(orders)]
    built.sort(key=lambda item: str(item[0]["createdAt"]), reverse=True)
    first_order = min((str(o["createdAt"]) for o, _, _ in built), default=_iso(_past(rng, 720)))
    since = datetime.fromisoformat(first_order.replace("Z", "+00:00")) - timedelta(
        days=rng.between(0, 200))
    symbol = "£" if person.country == "GB" else "$"
    return Record(
        external_customer_id=f"shop-{position:05d}", person_index=person.index, name=person.name,
        address=person.address, emails=emails, phones=phones,
        custom_attributes={"customerSince": since.date().isoformat(),
                           "totalSpent": _money(symbol, sum(s for _, _, s in built)),
                           "orderCount": str(len(built))},
        transactions=tuple(o for o, _, _ in built),
        archived_orders=frozenset(str(o["orderNumber"]) for o, archived, _ in built if archived),
        duplicate_of=duplicate_of,
    )


def _shop_phones(rng: _Dice, person: Person) -> tuple[PhoneEntry, ...]:
    phones = []
    if rng.random() < 0.85:
        phones.append(PhoneEntry(_international(person.mobile), "MOBILE", person.mobile))
    if person.home_phone and rng.random() < 0.7:
        phones.append(PhoneEntry(_international(person.home_phone), "HOME", person.home_phone))
    return tuple(phones)


def _build_shop(population: list[Person], size: int, seed: int) -> list[Record]:
    duplicates = max(1, size // 40) if size >= 4 else 0
    chosen = _pick(population, size - duplicates, seed, "shop")
    rng = _Dice(f"linker-records:{seed}:shop")
    counter = _OrderCounter()
    records = [
        _shop_record(rng, i + 1, person, counter, rng.weighted(range(6), (10, 30, 25, 15, 12, 8)),
                     _emails(rng, person), _shop_phones(rng, person))
        for i, person in enumerate(chosen)
    ]
    for d in range(duplicates):
        primary = records[d]
        person = chosen[d]
        records.append(_shop_record(rng, len(records) + 1, person, counter, rng.between(0, 1),
                                    primary.emails[:1], (), primary.external_customer_id))
    return records


# ------------------------------------------------------------------------------------ loyalty

TIERS = (("Bronze", 0), ("Silver", 1000), ("Gold", 5000), ("Platinum", 15000))
REWARDS = (("Free coffee", 250), ("Pastry of the day", 400), ("$5 off", 500),
           ("Free lunch", 1200), ("Canvas tote", 2000), ("Birthday treat", 0))
STORES = ("Downtown", "Airport", "Riverside", "Old Town", "Online")


def _loyalty_record(rng: _Dice, position: int, person: Person) -> Record:
    points = int(rng.paretovariate(1.2) * 400) - 400 + rng.between(0, 600)
    points = min(points, 60000)
    tier = next(name for name, floor in reversed(TIERS) if points >= floor)
    since = _past(rng, 2000)
    rewards = []
    for _ in range(rng.weighted(range(5), (20, 30, 25, 15, 10))):
        reward, cost = rng.pick(REWARDS)
        rewards.append({"type": "GENERIC", "reward": reward, "points": str(-cost),
                        "store": rng.pick(STORES), "redeemedAt": _iso(_past(rng, 365))})
    rewards.sort(key=lambda t: t["redeemedAt"], reverse=True)
    phones = []
    if rng.random() < 0.75:
        phones.append(PhoneEntry(person.mobile, "MOBILE", person.mobile))
    if person.home_phone and rng.random() < 0.5:
        phones.append(PhoneEntry(person.home_phone, "HOME", person.home_phone))
    return Record(
        external_customer_id=f"L-{position:06d}", person_index=person.index, name=person.name,
        address=person.address, emails=_emails(rng, person), phones=tuple(phones),
        custom_attributes={"tier": tier, "points": str(points),
                           "memberSince": since.date().isoformat()},
        transactions=tuple(rewards),
    )


def _build_loyalty(population: list[Person], size: int, seed: int) -> list[Record]:
    rng = _Dice(f"linker-records:{seed}:loyalty")
    return [_loyalty_record(rng, i + 1, p)
            for i, p in enumerate(_pick(population, size, seed, "loyalty"))]


# ------------------------------------------------------------------------------------- travel

AIRLINES = (("Northwind Airways", "NW"), ("Bluebird Air", "BB"), ("Cascade Airlines", "CX"))
AIRPORTS = ("SFO", "JFK", "ORD", "BOS", "SEA", "DEN", "AUS", "LAX", "ATL", "MIA", "PDX", "PHX",
            "BNA", "MSP", "LHR", "MAN", "CDG", "AMS")
CABINS = ("ECONOMY", "PREMIUM_ECONOMY", "BUSINESS", "FIRST")
CONFIRMATION_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _flight(rng: _Dice, person: Person) -> dict[str, Any]:
    airline, code = rng.pick(AIRLINES)
    outbound = rng.random() < 0.5
    other = rng.pick([a for a in AIRPORTS if a != person.airport])
    origin, destination = (person.airport, other) if outbound else (other, person.airport)
    departure = REFERENCE_TIME + timedelta(days=rng.between(-300, 90),
                                           minutes=rng.between(0, 24 * 60 - 1))
    arrival = departure + timedelta(minutes=rng.between(60, 11 * 60))
    if departure > REFERENCE_TIME:
        status = "CANCELLED" if rng.random() < 0.05 else "SCHEDULED"
    else:
        status = "CANCELLED" if rng.random() < 0.05 else "LANDED"
    return {
        "type": "FLIGHT",
        "confirmationCode": _code(rng.bits(30)),
        "airline": airline, "flightNumber": f"{code}{rng.between(10, 2999)}",
        "origin": origin, "destination": destination,
        "departureAt": _iso(departure), "arrivalAt": _iso(arrival), "status": status,
        "seat": f"{rng.between(1, 38)}{rng.pick('ABCDEF')}",
        "cabin": rng.weighted(CABINS, (70, 15, 12, 3)),
    }


def _travel_record(rng: _Dice, position: int, person: Person) -> Record:
    flights = [_flight(rng, person) for _ in range(rng.weighted(range(5), (15, 30, 25, 18, 12)))]
    flights.sort(key=lambda f: f["departureAt"], reverse=True)
    this_year = sum(1 for f in flights if f["departureAt"][:4] == str(REFERENCE_TIME.year))
    return Record(
        external_customer_id=f"T-{position:05d}", person_index=person.index, name=person.name,
        address=person.address, emails=_emails(rng, person),
        phones=(PhoneEntry(person.mobile, "MOBILE", person.mobile),),
        custom_attributes={"frequentFlyerNumber": f"NW{rng.between(10**7, 10**8 - 1)}",
                           "homeAirport": person.airport,
                           "eliteStatus": rng.weighted(("Member", "Silver", "Gold"), (6, 3, 1)),
                           "tripsThisYear": str(this_year)},
        transactions=tuple(flights),
    )


def _build_travel(population: list[Person], size: int, seed: int) -> list[Record]:
    rng = _Dice(f"linker-records:{seed}:travel")
    return [_travel_record(rng, i + 1, p)
            for i, p in enumerate(_pick(population, size, seed, "travel"))]


# ---------------------------------------------------------------------------------- loading

_BUILDERS = {"shop": _build_shop, "loyalty": _build_loyalty, "travel": _build_travel}


def build_dataset(name: str, size: int | None = None, seed: int = DEFAULT_SEED) -> Dataset:
    """Build the dataset ``name`` afresh (no cache); ValueError for an unknown name or size < 1."""
    key = name.strip().lower()
    if key not in _BUILDERS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASET_NAMES)}")
    count = DEFAULT_SIZE if size is None else size
    if count < 1:
        raise ValueError(f"dataset size must be at least 1, got {count}")
    population = list(_population(population_size(count), seed))
    return Dataset(name=key, records=_BUILDERS[key](population, count, seed),
                   population=population, seed=seed)


@lru_cache(maxsize=32)
def _load(name: str, size: int | None, seed: int) -> Dataset:
    return build_dataset(name, size, seed)


def load_dataset(name: str, size: int | None = None, seed: int = DEFAULT_SEED) -> Dataset:
    """The dataset ``name`` with ``size`` records (default 300) for ``seed``, built once.

    Raises ValueError for an unknown name or a size below 1. Instances are cached and shared:
    do not mutate them (``build_dataset`` gives a private copy).
    """
    return _load(name.strip().lower(), DEFAULT_SIZE if size is None else size, seed)
