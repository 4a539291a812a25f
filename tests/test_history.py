"""History and changes (SPEC §10): runs stamped with --as-of over hand-made Horde snapshots, real Parquet, the
real CLI, a real redis-server."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import redis

from jobs.__main__ import main
from pipeline.contracts import keys
from pipeline.contracts.models import CategoryChanges, CategoryDeletionRiskResponse
from pipeline.contracts.rules import RiskRules
from pipeline.contracts.schemas import POINT_SLOTS
from pipeline.contracts.settings import load_settings
from pipeline.sinks.parquet_snapshot import SnapshotWriter, latest_table, manifests, pending_key, run_tables
from pipeline.sinks.store import open_store
from pipeline.steps.changes import changes
from pipeline.steps.history import history_fields, model_state
from pipeline.steps.presets import preset_filter
from tests.conftest import SAMPLE_DATA

IMAGE = "image_generation"
D1, D2, KILLED, D6, D9 = (
    "2026-03-01T06:00:00Z",
    "2026-03-02T06:00:00Z",
    "2026-03-05T06:00:00Z",
    "2026-03-06T18:00:00Z",
    "2026-03-09T06:00:00Z",
)


def at(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def horde_folder(base: Path, name: str, *, without_workers: set[str], month_usage: dict[str, int]) -> Path:
    """The sample Horde snapshot with some image models unserved and some month usages changed."""
    folder = base / f"horde-{name}"
    shutil.copytree(SAMPLE_DATA / "horde", folder)
    workers = json.loads((folder / "workers_image.json").read_text())
    for worker in workers:
        worker["models"] = [model for model in worker["models"] if model not in without_workers]
    (folder / "workers_image.json").write_text(json.dumps(workers))
    stats = json.loads((folder / "stats_image.json").read_text())
    stats["month"].update(month_usage)
    (folder / "stats_image.json").write_text(json.dumps(stats))
    return folder


def reference_folder(base: Path, name: str, *, add: str | None = None, remove: str | None = None) -> Path:
    """The sample reference, with one image model added (a copy of Analog Diffusion) and one removed."""
    folder = base / f"reference-{name}"
    shutil.copytree(SAMPLE_DATA / "model_reference", folder)
    path = folder / "stable_diffusion.json"
    records = json.loads(path.read_text())
    if add:
        records[add] = {**records["Analog Diffusion"], "name": add}
    if remove:
        del records[remove]
    path.write_text(json.dumps(records))
    return folder


class Days:
    """The inputs of each day: Dreamshaper loses its workers on D2 for good; Juggernaut XL loses them on D2 and
    comes back on D6; on D6 'Brand New Model' joins the reference, Counterfeit leaves it and Deliberate's month
    usage falls from 60000 to 20000. The killed run (D5) would say everything is served again."""

    def __init__(self, base: Path) -> None:
        plain = reference_folder(base, "plain")
        changed = reference_folder(base, "changed", add="Brand New Model", remove="Counterfeit")
        lost = {"Dreamshaper", "Juggernaut XL"}
        self.inputs = {
            D1: (plain, horde_folder(base, "d1", without_workers=set(), month_usage={})),
            D2: (plain, horde_folder(base, "d2", without_workers=lost, month_usage={})),
            KILLED: (plain, horde_folder(base, "d5", without_workers=set(), month_usage={})),
            D6: (changed, horde_folder(base, "d6", without_workers={"Dreamshaper"}, month_usage={"Deliberate": 20000})),
        }
        self.inputs[D9] = self.inputs[D6]

    def argv(self, day: str, *extra: str) -> list[str]:
        reference, horde = self.inputs[day]
        return ["run", "--as-of", day, "--reference", str(reference), "--horde", str(horde), *extra]


def killed_run(days: Days, root: Path, scratch: Path) -> set[Path]:
    """What a run killed before its commit leaves: every table file of the run, its pending marker, no manifest."""
    assert main(days.argv(KILLED, "--snapshot-dir", str(scratch))) == 0
    left: set[Path] = set()
    for source in scratch.glob("*/category=*/run_date=*/*.parquet"):
        target = root / source.relative_to(scratch)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
        left.add(target)
    (manifest,) = manifests(scratch)
    categories = sorted({category for entries in manifest["tables"].values() for category in entries})
    marker = {"run_id": manifest["run_id"], "run_date": manifest["run_at"][:10], "categories": categories}
    open_store(root).put(pending_key(manifest["run_id"]), json.dumps(marker).encode())
    return left


def image_rows(root: Path) -> dict[str, dict[str, Any]]:
    risk = latest_table(root, "deletion_risk", IMAGE)
    assert risk is not None
    return {row["name"]: row for row in risk.filter(~pl.col("grouped")).iter_rows(named=True)}


def change_rows(root: Path, manifest: dict[str, Any]) -> set[tuple[str, str, int | None, int | None]]:
    frame = run_tables(root, manifest, ["changes"])[("changes", IMAGE)]
    assert frame["run_id"].unique().to_list() in ([manifest["run_id"]], [])
    return {(r["name"], r["change"], r["before"], r["after"]) for r in frame.iter_rows(named=True)}


@pytest.fixture
def days(tmp_path: Path) -> Days:
    return Days(tmp_path / "inputs")


def test_a_sequence_of_runs_gives_the_exact_days_dates_and_changes(
    days: Days, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "snapshots"
    assert main(days.argv(D1)) == 0
    assert main(days.argv(D2)) == 0
    capsys.readouterr()
    (first, second) = manifests(root)
    assert first["run_id"].startswith("20260301T060000Z-") and first["run_at"] == "2026-03-01T06:00:00+00:00"
    assert (
        root / "deletion_risk" / f"category={IMAGE}" / "run_date=2026-03-02" / f"{second['run_id']}.parquet"
    ).is_file()
    assert change_rows(root, first) == set()  # nothing to compare the first run with
    assert change_rows(root, second) == {
        ("Dreamshaper", "lost_all_workers", 1, 0),
        ("Juggernaut XL", "lost_all_workers", 1, 0),
        ("Dreamshaper", "became_at_risk", 0, 1),
        ("Juggernaut XL", "became_at_risk", 0, 1),
    }
    rows = image_rows(root)
    assert rows["Juggernaut XL"]["days_without_workers"] == 1
    assert rows["Juggernaut XL"]["at_risk_since"] == at(D2)

    orphans = killed_run(days, root, tmp_path / "scratch")
    assert orphans  # a killed run's files sit in the store, without a manifest...
    capsys.readouterr()
    assert main(["history", "--category", IMAGE, "Dreamshaper", "--json"]) == 0
    timeline = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [row["run_at"] for row in timeline] == [D1, D2]  # ...and no reader sees them

    assert main(days.argv(D6)) == 0
    summary = capsys.readouterr().out
    assert f"{IMAGE}: 4 models changed state since the last run" in summary  # Juggernaut XL twice
    assert not any(path.exists() for path in orphans)  # swept by the next run
    rows = image_rows(root)
    dreamshaper = rows["Dreamshaper"]
    # the killed run had Dreamshaper served on D5: it never counted
    assert dreamshaper["last_seen_with_workers"] == at(D1) and dreamshaper["first_seen"] == at(D1)
    assert dreamshaper["days_without_workers"] == 5  # 5.5 days, whole days
    assert dreamshaper["at_risk_since"] == at(D2)
    juggernaut = rows["Juggernaut XL"]
    assert juggernaut["last_seen_with_workers"] == at(D6) and juggernaut["days_without_workers"] == 0
    assert juggernaut["at_risk_since"] is None
    assert rows["Brand New Model"]["first_seen"] == at(D6) and rows["Brand New Model"]["days_without_workers"] == 0
    assert rows["Brand New Model"]["last_seen_with_workers"] is None
    assert "Counterfeit" not in rows
    assert rows["Deliberate"]["usage_month_previous"] is None  # no run is 7 days older yet
    third = manifests(root)[-1]
    assert change_rows(root, third) == {
        ("Brand New Model", "added", None, 0),
        ("Counterfeit", "removed", 0, None),
        ("Juggernaut XL", "gained_workers", 0, 1),  # against D2, not the killed run
        ("Juggernaut XL", "no_longer_at_risk", 1, 0),
        ("Deliberate", "usage_dropped", 60000, 20000),
    }

    assert main(days.argv(D9)) == 0
    rows = image_rows(root)
    assert rows["Dreamshaper"]["days_without_workers"] == 8
    assert rows["Dreamshaper"]["at_risk_since"] == at(D2)
    assert rows["Brand New Model"]["days_without_workers"] == 2  # 2.5 days since first seen, never served
    assert rows["Brand New Model"]["at_risk_since"] == at(D6)
    # the latest run at least 7 days before D9 06:00 is D2 06:00 (exactly 7 days)
    assert rows["Deliberate"]["usage_month_previous"] == 60000
    assert rows["Deliberate"]["usage_month_change"] == -40000
    assert rows["AAM XL"]["usage_month_previous"] == 120000 and rows["AAM XL"]["usage_month_change"] == 0
    assert rows["Brand New Model"]["usage_month_previous"] is None
    assert change_rows(root, manifests(root)[-1]) == set()

    risk = latest_table(root, "deletion_risk", IMAGE)
    assert risk is not None
    stale = risk.filter(~pl.col("grouped"), preset_filter("stale_workers", RiskRules(stale_worker_days=8)))
    assert "Dreamshaper" in set(stale["name"]) and "Juggernaut XL" not in set(stale["name"])
    assert risk.filter(preset_filter("stale_workers")).height == 0  # nothing is 30 days without workers yet

    capsys.readouterr()
    assert main(["history", "--category", IMAGE, "Juggernaut XL", "--json"]) == 0
    timeline = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(row["run_at"], row["worker_count"], row["at_risk"]) for row in timeline] == [
        (D1, 1, False),
        (D2, 0, True),
        (D6, 1, False),
        (D9, 1, False),
    ]
    assert timeline[1]["flags"] == ["no_active_workers"]
    assert main(["history", "--category", IMAGE, "Juggernaut XL"]) == 0
    assert "4 committed runs" in capsys.readouterr().out
    assert main(["history", "--category", IMAGE, "No Such Model"]) == 1


def _states(root: Path) -> dict[tuple[str, str], pl.DataFrame]:
    return {
        (manifest["run_id"], category): frame
        for manifest in manifests(root)
        for (_, category), frame in run_tables(root, manifest, ["model_state"]).items()
    }


def test_rebuild_equals_the_incremental_state_bit_for_bit(
    days: Days, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "snapshots"
    for day in (D1, D2, D6, D9):
        assert main(days.argv(day)) == 0
    files = {path: path.read_bytes() for path in root.glob("model_state/**/*.parquet")}
    incremental = _states(root)
    assert len(files) == len(incremental) == 4 * 2  # four runs, image and text
    capsys.readouterr()
    assert main(["history", "--rebuild"]) == 0
    assert "4 committed runs: 8 states compared, 0 rewritten" in capsys.readouterr().out
    assert {path: path.read_bytes() for path in root.glob("model_state/**/*.parquet")} == files

    # The same transition replayed in memory from the stored risk tables equals what each run stored.
    replayed: dict[str, pl.DataFrame] = {}
    for manifest in manifests(root):
        for (_, category), risk in run_tables(root, manifest, ["deletion_risk"]).items():
            state = model_state(replayed.get(category), risk, datetime.fromisoformat(manifest["run_at"]))
            stored = incremental[(manifest["run_id"], category)].select(state.columns)
            assert stored.equals(state, null_equal=True), (manifest["run_id"], category)
            replayed[category] = state

    # A damaged state is found and rewritten; the runs after it were computed from the right one.
    third = manifests(root)[2]
    path = root / third["tables"]["model_state"][IMAGE]["path"]
    damaged = pl.read_parquet(path).with_columns(pl.col("first_seen").dt.offset_by("1d"))
    damaged.write_parquet(path)
    assert main(["history", "--rebuild"]) == 0
    out = capsys.readouterr().out
    assert "1 rewritten" in out and f"{third['run_id']}/{IMAGE}" in out
    assert _states(root)[(third["run_id"], IMAGE)].equals(incremental[(third["run_id"], IMAGE)])


def test_a_rebuild_after_retention_starts_from_the_oldest_kept_state(
    days: Days, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # SPEC §10 + §13: once retention removed D1, D2's stored state is the only record of it; a rebuild must give
    # the same values as the runs computed, not restart history at D2
    root = tmp_path / "snapshots"
    for day in (D1, D2, D6):
        assert main(days.argv(day)) == 0
    monkeypatch.setenv("SNAPSHOT_KEEP_ALL_DAYS", "1")
    monkeypatch.setenv("SNAPSHOT_KEEP_DAILY_DAYS", "1")
    assert main(days.argv(D9)) == 0  # its maintenance removes D1 (8 days old), keeps D2 (the 7-day comparison's)
    assert [manifest["run_at"][:10] for manifest in manifests(root)] == ["2026-03-02", "2026-03-06", "2026-03-09"]
    files = {path: path.read_bytes() for path in root.glob("model_state/**/*.parquet")}
    capsys.readouterr()
    assert main(["history", "--rebuild"]) == 0
    assert "3 committed runs: 6 states compared, 0 rewritten" in capsys.readouterr().out
    assert {path: path.read_bytes() for path in root.glob("model_state/**/*.parquet")} == files


def test_a_run_time_in_the_future_is_refused(days: Days, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # retention counts back from the newest run: a typo'd year would have the next maintenance remove the history
    root = tmp_path / "snapshots"
    assert main(days.argv(D1)) == 0
    capsys.readouterr()
    reference, horde = days.inputs[D2]
    assert main(["run", "--as-of", "2062-03-02T06:00:00Z", "--reference", str(reference), "--horde", str(horde)]) == 2
    assert "is in the future" in capsys.readouterr().err
    assert len(manifests(root)) == 1


def test_a_backfill_older_than_the_newest_run_needs_rebuild_after(
    days: Days, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "snapshots"
    for day in (D1, D2, D6):
        assert main(days.argv(day)) == 0
    capsys.readouterr()
    days.inputs["2026-03-04T06:00:00Z"] = days.inputs[D2]
    assert main(days.argv("2026-03-04T06:00:00Z")) == 2
    assert "--rebuild-after" in capsys.readouterr().err
    assert len(manifests(root)) == 3 and not list(root.glob("**/run_date=2026-03-04"))
    assert main(["run", "--as-of", "2026-03-04 06:00"]) == 2
    assert "2026-01-31T06:00:00Z" in capsys.readouterr().err

    assert main(days.argv("2026-03-04T06:00:00Z", "--rebuild-after")) == 0
    assert [m["run_at"][:10] for m in manifests(root)] == ["2026-03-01", "2026-03-02", "2026-03-04", "2026-03-06"]
    backfill = manifests(root)[2]
    risk = run_tables(root, backfill, ["deletion_risk"])[("deletion_risk", IMAGE)]
    dreamshaper = risk.filter(pl.col("name") == "Dreamshaper", ~pl.col("grouped")).row(0, named=True)
    assert dreamshaper["days_without_workers"] == 3 and dreamshaper["last_seen_with_workers"] == at(D1)
    # the state after the backfill now includes it: D6 carries a usage point of 2026-03-04
    state = latest_table(root, "model_state", IMAGE)
    assert state is not None
    row = state.filter(pl.col("key") == "Dreamshaper", ~pl.col("grouped")).row(0, named=True)
    points = [row[f"point_{slot}_at"] for slot in range(POINT_SLOTS) if row[f"point_{slot}_at"] is not None]
    assert [point.date().isoformat() for point in reversed(points)] == [
        "2026-03-01",
        "2026-03-02",
        "2026-03-04",
        "2026-03-06",
    ]
    capsys.readouterr()
    assert main(["history", "--rebuild"]) == 0
    assert "0 rewritten" in capsys.readouterr().out


@pytest.mark.parametrize("order", [(False, True, False), (True, False, True)])
def test_history_fields_survive_group_by_variant_both_ways(
    order: tuple[bool, bool, bool], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "snapshots"
    for day, by_variant in zip((D1, D2, D6), order, strict=True):
        monkeypatch.setenv("GROUP_BY_VARIANT", str(by_variant).lower())
        assert main(["run", "--as-of", day]) == 0
        risk = latest_table(root, "deletion_risk", "text_generation")
        assert risk is not None
        families = risk.filter(pl.col("grouped"))
        assert families.height and families["first_seen"].null_count() == 0
        # a family's first sighting is its members': grouping differently later does not reset it
        assert set(families["first_seen"]) == {at(D1)}
        served = families.filter(pl.col("worker_count") > 0)
        assert served.height and set(served["last_seen_with_workers"]) == {at(day)}
        assert set(served["days_without_workers"]) == {0}
        unserved = families.filter(pl.col("worker_count") == 0)
        expected_days = (at(day) - at(D1)).days
        assert unserved.height and set(unserved["days_without_workers"]) == {expected_days}
        assert unserved["at_risk_since"].to_list() == [at(D1)] * unserved.height
    state = latest_table(root, "model_state", "text_generation")
    assert state is not None and state.filter(pl.col("grouped")).height == families.height


def test_the_changes_key_is_published_with_the_run(
    days: Days, redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REDIS_URL", redis_url)
    prefix = load_settings().redis_key_prefix
    assert main(days.argv(D1)) == 0
    assert main(days.argv(D2)) == 0
    client = redis.Redis.from_url(redis_url)
    last = json.loads(client.get(keys.last_run_key(prefix)))  # type: ignore[arg-type]
    raw = client.get(keys.changes_key(prefix, IMAGE))
    assert raw is not None
    published = CategoryChanges.model_validate_json(raw)
    assert published.run_id == last["run_id"] == manifests(tmp_path / "snapshots")[-1]["run_id"]
    assert published.counts["lost_all_workers"] == 2 and published.counts["added"] == 0
    assert {(c.name, c.change) for c in published.changes} >= {("Dreamshaper", "lost_all_workers")}
    members = {member.decode() for member in client.smembers(keys.published_keys_key(prefix))}
    assert keys.changes_key(prefix, IMAGE) in members
    risk = CategoryDeletionRiskResponse.model_validate_json(
        client.get(keys.deletion_risk_key(prefix, IMAGE, False))  # type: ignore[arg-type]
    )
    dreamshaper = next(model for model in risk.models if model.name == "Dreamshaper")
    assert dreamshaper.first_seen == at(D1) and dreamshaper.days_without_workers == 1
    assert dreamshaper.at_risk_since == at(D2) and dreamshaper.usage_month_previous is None
    for grouped in (False, True):
        view = json.loads(client.get(keys.deletion_risk_key(prefix, "text_generation", grouped)))  # type: ignore[arg-type]
        assert {"first_seen", "days_without_workers", "usage_month_change"} <= set(view["models"][0])
        assert view["models"][0]["first_seen"] == D1


def test_changes_of_a_hand_made_pair_of_states() -> None:
    def risk(rows: list[tuple[str, int, int, bool]]) -> pl.DataFrame:
        return pl.DataFrame(
            [(n, False, w, u, a, int(a)) for n, w, u, a in rows],
            schema=["name", "grouped", "worker_count", "usage_month", "at_risk", "risk_score"],
            orient="row",
        )

    before = model_state(None, risk([("a", 1, 100, False), ("b", 0, 10, True), ("c", 2, 51, False)]), at(D1))
    after = model_state(before, risk([("a", 0, 50, True), ("b", 3, 10, False), ("d", 0, 0, True)]), at(D2))
    found = changes(before, after, IMAGE)
    assert found.columns == ["category", "name", "change", "before", "after"]
    assert found.select("name", "change", "before", "after").rows() == [
        ("d", "added", None, 0),
        ("c", "removed", 51, None),
        ("a", "became_at_risk", 0, 1),
        ("b", "no_longer_at_risk", 1, 0),
        ("a", "lost_all_workers", 1, 0),
        ("b", "gained_workers", 0, 3),
        ("a", "usage_dropped", 100, 50),  # exactly half counts
    ]
    assert changes(None, after, IMAGE).height == 0


def test_as_of_must_be_a_utc_time(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--as-of", "yesterday"]) == 2
    assert "not a UTC time like 2026-01-31T06:00:00Z" in capsys.readouterr().err
    assert main(["history"]) == 2


def test_an_uncommitted_writer_never_feeds_the_next_state(tmp_path: Path) -> None:
    """Tables written without a manifest (a failed run) are not the previous state."""
    root = tmp_path / "snapshots"
    assert main(["run", "--as-of", D1]) == 0
    good = latest_table(root, "model_state", IMAGE)
    assert good is not None
    writer = SnapshotWriter(root=root, run_id="20260302T000000Z-deadbeef", run_at=at(D2))
    writer.write(
        "model_state",
        IMAGE,
        good.drop("run_id", "run_at", "category", "run_date").with_columns(
            pl.lit(at("2020-01-01T00:00:00Z")).alias("first_seen")
        ),
    )
    assert main(["run", "--as-of", D6]) == 0
    state = latest_table(root, "model_state", IMAGE)
    assert state is not None and set(state["first_seen"]) == {at(D1)}


def test_usage_points_keep_one_run_per_day_and_stay_few() -> None:
    def risk(usage: int) -> pl.DataFrame:
        return pl.DataFrame(
            {"name": ["m"], "grouped": [False], "worker_count": [1], "usage_month": [usage], "at_risk": [False]}
        ).with_columns(pl.lit(0).alias("risk_score"))

    state = None
    seen: dict[str, tuple[list[str], int | None]] = {}
    for time, usage in [
        ("2026-03-01T06:00:00Z", 10),
        ("2026-03-01T18:00:00Z", 20),  # the day's latest run replaces its earlier point
        ("2026-03-02T06:00:00Z", 30),
        ("2026-03-08T12:00:00Z", 40),  # 6 days 18 hours after the kept 03-01 point: none is old enough
        ("2026-03-09T06:00:00Z", 50),  # 03-02 06:00 is exactly 7 days older
    ]:
        state = model_state(state, risk(usage), at(time))
        fields = history_fields(state, at(time))
        row = state.row(0, named=True)
        times = [row[f"point_{slot}_at"].strftime("%m-%dT%H") for slot in range(POINT_SLOTS) if row[f"point_{slot}_at"]]
        assert [row[f"point_{slot}_usage_month"] is not None for slot in range(POINT_SLOTS)] == [
            slot < len(times) for slot in range(POINT_SLOTS)
        ]
        times.reverse()
        seen[time] = (times, fields["usage_month_previous"][0])
    assert seen["2026-03-01T18:00:00Z"] == (["03-01T18"], None)
    assert seen["2026-03-08T12:00:00Z"] == (["03-01T18", "03-02T06", "03-08T12"], None)
    assert seen["2026-03-09T06:00:00Z"] == (["03-02T06", "03-08T12", "03-09T06"], 30)

    for day in range(10, 31):  # a daily run for three weeks: 8 points, the latest 7 days old the oldest
        state = model_state(state, risk(day), at(f"2026-03-{day:02d}T06:00:00Z"))
    assert state is not None and [state[f"point_{slot}_usage_month"][0] for slot in range(POINT_SLOTS)] == [
        *range(30, 22, -1),
        None,
    ]
    assert history_fields(state, at("2026-03-30T06:00:00Z"))["usage_month_previous"][0] == 23
