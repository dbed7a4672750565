"""Streaming CSV import on SQLite and PostgreSQL: batches (one transaction and one audit event
each), progress, line numbers across batches, file-level refusals that import nothing, and
the ``linker customers import`` command reading a real file."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from linker.cli.main import main
from linker.config import Settings
from linker.core.permissions import SYSTEM
from linker.services.context import ServiceContext
from linker.services.customers import CustomerService, ImportProgress
from linker.services.errors import InvalidInput
from linker.store.models import AuditEvent, Customer, CustomerEmail

HEADER = "name,email,phone,phone_type\n"


def people(start: int, count: int) -> str:
    """``count`` distinct good rows."""
    return "".join(f"P{i},p{i}@example.com,+1415{3000000 + i:07d},\n"
                   for i in range(start, start + count))


def count(ctx: ServiceContext, model: type) -> int:
    with ctx.db.session(readonly=True) as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_rows_are_written_in_batches_with_progress_and_one_audit_event_each(
        ctx: ServiceContext) -> None:
    # 8 data lines: line 6 repeats line 2's email (caught across batches), line 8 is bad.
    text = HEADER + people(0, 4) + "Dup,P0@example.com,,\n" + people(4, 1) + "Bad,nope,,\n"
    seen: list[ImportProgress] = []
    report = CustomerService(ctx).import_csv(SYSTEM, text, progress=seen.append,
                                             batch_size=3)
    assert report.counts() == {"rows": 7, "created": 5, "rejected": 2}
    assert [(r.line, r.reason.split(" (")[0]) for r in report.rejected] == [
        (6, "duplicate of line 2"), (8, "bad email: 'nope' is not an email address")]
    assert [(p.rows_done, p.rows_total, p.created, p.rejected, p.last_line) for p in seen] == [
        (3, 7, 3, 0, 4), (6, 7, 5, 1, 7), (7, 7, 5, 2, 8)]
    with ctx.db.session(readonly=True) as s:
        events = s.execute(select(AuditEvent.entity_id, AuditEvent.after).where(
            AuditEvent.action == "customer.imported").order_by(AuditEvent.id)).all()
    assert [tuple(e) for e in events] == [
        ("csv:lines 2-4", {"rows": 3, "created": 3, "rejected": 0}),
        ("csv:lines 5-7", {"rows": 3, "created": 2, "rejected": 1}),
        ("csv:lines 8-8", {"rows": 1, "created": 0, "rejected": 1}),
    ]
    assert count(ctx, Customer) == 5 and count(ctx, CustomerEmail) == 5
    ana = CustomerService(ctx).get(SYSTEM, report.created[0])
    assert (ana.name, ana.main_email, [p.e164 for p in ana.phones]) == (
        "P0", "p0@example.com", ["+14153000000"])


def test_a_value_taken_meanwhile_rejects_only_its_row(ctx: ServiceContext) -> None:
    customers = CustomerService(ctx)

    def take_a_later_email(progress: ImportProgress) -> None:
        if progress.rows_done == 2:  # after the first batch, someone creates p3's profile
            customers.create(SYSTEM, "Meanwhile", ["p3@example.com"])

    report = customers.import_csv(SYSTEM, HEADER + people(0, 5), progress=take_a_later_email,
                                  batch_size=2)
    assert [r.line for r in report.rejected] == [5]
    assert "p3@example.com is already on the profile of Meanwhile" in report.rejected[0].reason
    assert len(report.created) == 4 and count(ctx, Customer) == 5


@pytest.mark.parametrize(("late_line", "field", "message"), [
    ('"open quote,never closed\n' + "x," * 70_000 + "\n", "file",
     "a value is longer than 131,072 characters"),
    ("a,b,c\nname,email,phone\n", None, None),  # a good file: rejected rows, not a refusal
])
def test_a_file_problem_late_in_the_file_imports_nothing(
        ctx: ServiceContext, late_line: str, field: str | None, message: str | None) -> None:
    text = HEADER + people(0, 2500) + late_line
    if field is None:
        report = CustomerService(ctx).import_csv(SYSTEM, text)
        assert len(report.created) == 2500
        return
    with pytest.raises(InvalidInput) as caught:
        CustomerService(ctx).import_csv(SYSTEM, text, batch_size=1000)
    assert message is not None and message in caught.value.fields[field]
    assert caught.value.fields[field].endswith("nothing was imported")
    assert count(ctx, Customer) == 0


def test_the_caps_refuse_the_file_before_anything_is_written(
        ctx: ServiceContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("linker.core.csv_rows.MAX_IMPORT_ROWS", 10)
    with pytest.raises(InvalidInput, match="more than 10 rows"):
        CustomerService(ctx).import_csv(SYSTEM, HEADER + people(0, 11), batch_size=2)
    monkeypatch.setattr("linker.core.csv_rows.MAX_IMPORT_ROWS", 100)
    monkeypatch.setattr("linker.core.csv_rows.MAX_IMPORT_CHARS", 1000)
    with pytest.raises(InvalidInput, match="more than 1,000 characters"):
        CustomerService(ctx).import_csv(SYSTEM, HEADER + people(0, 40), batch_size=2)
    assert count(ctx, Customer) == 0


def test_a_stream_that_cannot_be_read_twice_is_refused(ctx: ServiceContext) -> None:
    class Pipe(io.StringIO):
        def seekable(self) -> bool:
            return False

    with pytest.raises(InvalidInput, match="seekable"):
        CustomerService(ctx).import_csv(SYSTEM, Pipe(HEADER + people(0, 1)))


# -- the command -------------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings, tmp_path: Path) -> Path:
    monkeypatch.setenv("LINKER_HOME", str(tmp_path))
    monkeypatch.setenv("LINKER_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("LINKER_SECRET_KEY", settings.secret_key or "")
    return tmp_path


def test_the_command_streams_a_file_and_prints_progress(
        cli_env: Path, ctx: ServiceContext, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("linker.cli.customers_cmd.PROGRESS_EVERY_S", 0.0)
    path = cli_env / "people.csv"
    path.write_text("\ufeff" + HEADER + people(0, 2100) + "Bad,nope,,\n", encoding="utf-8")
    code = main(["customers", "import", str(path)])
    out, err = capsys.readouterr()
    assert code == 1
    assert out.splitlines() == [
        f"{path}: 2101 rows, 2100 imported, 1 rejected",
        "  line 2102: bad email: 'nope' is not an email address (it needs exactly one '@': "
        "name@domain.tld)"]
    assert err.splitlines() == [
        "  1,000 of 2,101 rows done (line 1,001): 1,000 imported, 0 rejected",
        "  2,000 of 2,101 rows done (line 2,001): 2,000 imported, 0 rejected",
        "  2,101 of 2,101 rows done (line 2,102): 2,100 imported, 1 rejected"]
    assert count(ctx, Customer) == 2100


def test_the_command_refuses_text_that_is_not_utf8(cli_env: Path, ctx: ServiceContext,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    path = cli_env / "latin1.csv"
    path.write_bytes((HEADER + people(0, 3)).encode() + "Zoë,zoe@example.com,,\n".encode(
        "latin-1"))
    code = main(["customers", "import", str(path)])
    _, err = capsys.readouterr()
    assert code == 1
    assert "the text is not UTF-8" in err and "nothing was imported" in err
    assert count(ctx, Customer) == 0
