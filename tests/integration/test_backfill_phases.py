"""A backfill says what it does before its first batch (issue 22): healing the links left
without data, finding the profiles to try, then "0 of N" as soon as it knows N; the CLI prints
those steps before its progress bar."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from linker.cli.autolink_cmd import ProgressBar
from linker.cli.main import main
from linker.services.backfill import BackfillPhase, BackfillProgress
from tests.integration.test_backfill import (
    backfill,
    cli_env,
    populate,
    served,
)
from tests.integration.world import World

__all__ = ["served"]  # the fixture, used by name below

HEALING, FINDING, TRYING = BackfillPhase.HEALING, BackfillPhase.FINDING, BackfillPhase.TRYING


def steps_then_batches(world: World, **kwargs: object) -> list[tuple[str, BackfillProgress]]:
    """Every report of a run, in order: ("step", ...) before the batches, ("batch", ...)."""
    seen: list[tuple[str, BackfillProgress]] = []
    backfill(world, batch_size=5, phases=lambda p: seen.append(("step", p)),
             progress=lambda p: seen.append(("batch", p)), **kwargs)
    return seen


def test_a_real_run_reports_healing_finding_and_0_of_n_before_its_first_batch(
        world: World) -> None:
    pop = populate(world)  # its already-linked profile has no pulled data: one link to heal
    seen = steps_then_batches(world)
    steps = [(p.phase, p.done, p.total) for what, p in seen if what == "step"]
    assert steps == [(HEALING, 0, 0), (HEALING, 0, 1), (HEALING, 1, 1), (FINDING, 0, 0),
                     (TRYING, 0, len(pop.candidates))]
    assert [what for what, _ in seen] == ["step"] * 5 + ["batch"] * 3  # steps come first
    assert [p.done for what, p in seen if what == "batch"] == [5, 10, 14]
    assert all(p.phase is TRYING for what, p in seen if what == "batch")
    finding = seen[3][1]
    assert finding.fraction == 0.0  # not "done": nothing is known yet
    assert finding.since is not None and finding.since >= seen[0][1].since  # type: ignore[operator]


def test_a_dry_run_reports_finding_then_0_of_n(world: World) -> None:
    pop = populate(world)
    seen = steps_then_batches(world, dry_run=True)
    steps = [(p.phase, p.done, p.total) for what, p in seen if what == "step"]
    assert steps == [(FINDING, 0, 0), (TRYING, 0, len(pop.candidates))]  # a dry run heals nothing
    assert [what for what, _ in seen][:2] == ["step", "step"]


def test_the_step_text_names_the_step_and_its_time() -> None:
    counts: dict[str, int] = {}
    finding = BackfillProgress(0, 0, counts, 0.0, FINDING, since=100.0)
    assert finding.step_text(now=112.4) == "finding profiles to try… 12 s"
    healing = BackfillProgress(64, 1200, counts, 0.0, HEALING, since=100.0)
    assert healing.step_text(now=103.0) == ("healing interrupted links: 64 of 1,200 links… "
                                            "3 s")
    assert healing.fraction == 64 / 1200
    trying = BackfillProgress(0, 14, counts, 0.0)
    assert trying.phase is TRYING and trying.step_text(now=5.0) == "0 of 14 profiles"


def test_cli_prints_the_steps_before_the_bar(served: tuple[World, object],
                                             monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    world, _ = served
    cli_env(monkeypatch, world, tmp_path)
    assert main(["autolink", "backfill", "--dry-run", "--integration", "shop"]) == 0
    err = capsys.readouterr().err
    finding = re.search(r"^finding profiles to try… \d+ s$", err, re.MULTILINE)
    zero = re.search(r"^\[-+\]\s+0% 0/14 profiles", err, re.MULTILINE)
    assert finding and zero, err
    assert finding.start() < zero.start() < err.index("14/14 profiles")


def test_cli_healing_lines_off_a_terminal_come_at_each_tenth() -> None:
    import io

    stream = io.StringIO()
    bar = ProgressBar(stream, dry_run=False)
    for done, total in [(0, 0), (0, 100), (5, 100), (10, 100), (19, 100), (64, 100)]:
        bar.phase(BackfillProgress(done, total, {}, 0.0, HEALING, since=time.time()))
    bar.phase(BackfillProgress(0, 0, {}, 0.0, FINDING, since=time.time()))
    lines = [re.sub(r"… \d+ s$", "…", line) for line in stream.getvalue().splitlines()]
    assert lines == ["healing interrupted links…", "healing interrupted links: 0 of 100 links…",
                     "healing interrupted links: 10 of 100 links…",
                     "healing interrupted links: 64 of 100 links…", "finding profiles to try…"]
