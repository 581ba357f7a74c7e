"""Staging leftovers of crashed writes: a writer killed mid-write (``MLOPS_KILL_AT``) leaves
its staging area; the next write to the same target removes it, never a live writer's."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from mlops_provider.core import io, versions
from mlops_provider.core.processes import host_id, this_owner

DAY = "dt=2026-01-05"
ROOT = Path(__file__).resolve().parents[2]


def _table(n: int, offset: int = 0) -> pa.Table:
    return pa.table({"customer_id": list(range(offset, offset + n)), "p": [0.5] * n})


def _hidden(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


def _dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    yield child
    child.kill()
    child.wait()


def _write_killed_at(point: str, part: Path, rows: int) -> int:
    """Write ``rows`` rows to ``part`` in a subprocess killed at ``point``; its exit code."""
    code = textwrap.dedent(
        f"""
        import pyarrow as pa
        from mlops_provider.core import io
        io.write_partition(pa.table({{"customer_id": list(range({rows})), "p": [0.9] * {rows}}}),
                           {str(part)!r})
        """
    )
    env = {
        **os.environ,
        "MLOPS_KILL_AT": point,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "provider"), str(ROOT)]),
    }
    return subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode


def _staging(directory: Path, name: str, owner: str | None, tag: str = "0123456789ab") -> Path:
    leaf = f".staging-{name}-{owner}-{tag}" if owner else f".staging-{name}-{tag}"
    path = directory / leaf
    path.mkdir(parents=True)
    (path / "part-00000.parquet").write_bytes(b"half written")
    return path


def _age(path: Path, hours: float) -> None:
    then = time.time() - hours * 3600
    for item in [path, *path.rglob("*")]:
        os.utime(item, (then, then))


def test_points_are_exported() -> None:
    assert io.POINTS == ("io.staged", "io.swapped")


@pytest.mark.parametrize("point", io.POINTS)
def test_a_killed_writers_leftovers_are_removed_by_the_next_write(
    tmp_path: Path, point: str
) -> None:
    part = tmp_path / "lake" / "predictions" / DAY
    io.write_partition(_table(3), str(part))  # something to replace
    assert _write_killed_at(point, part, 7) == -9
    leftovers = _hidden(tmp_path / "lake")
    assert len(leftovers) == 1 and leftovers[0].startswith(f".staging-predictions-{DAY}-")
    owner = leftovers[0].split("-")[-2]
    assert owner.startswith(f"{host_id()}p") and owner != this_owner()

    io.write_partition(_table(5, offset=100), str(part))
    assert _hidden(tmp_path / "lake") == []
    back = io.read_table(str(part)).to_pandas()
    assert sorted(back["customer_id"]) == list(range(100, 105))  # no duplicate, no old rows
    assert sorted(p.name for p in (tmp_path / "lake" / "predictions").iterdir()) == [DAY]


def test_leftovers_of_a_killed_single_file_write_are_removed(tmp_path: Path) -> None:
    target = tmp_path / "models" / "train.parquet"
    io.write_table(_table(2), str(target))
    dead = f"{host_id()}p{_dead_pid()}"
    leftover = tmp_path / "models" / f".staging-train.parquet-{dead}-0123456789ab"
    leftover.write_bytes(b"half")
    trash = tmp_path / "models" / f".trash-train.parquet-{dead}-0123456789ab"
    trash.write_bytes(b"old")
    io.write_table(_table(4), str(target))
    assert _hidden(tmp_path / "models") == []
    assert io.read_table(str(target)).num_rows == 4


def test_live_writers_staging_is_kept(tmp_path: Path, sleeper: subprocess.Popen[bytes]) -> None:
    lake = tmp_path / "lake"
    mine = _staging(lake, f"predictions-{DAY}", this_owner())
    childs = _staging(lake, f"predictions-{DAY}", f"{host_id()}p{sleeper.pid}", "ba9876543210")
    _age(childs, 48)  # age does not matter for a writer known to be alive
    dead = _staging(lake, f"predictions-{DAY}", f"{host_id()}p{_dead_pid()}", "aaaaaaaaaaaa")
    io.write_partition(_table(2), str(lake / "predictions" / DAY))
    assert _hidden(lake) == sorted([mine.name, childs.name])
    assert not dead.exists()


def test_other_hosts_and_unowned_staging_are_removed_only_when_old(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    lake = tmp_path / "lake"
    name = f"predictions-{DAY}"
    fresh = _staging(lake, name, "otherhostp12", "111111111111")
    old = _staging(lake, name, "otherhostp13", "222222222222")
    unowned_fresh = _staging(lake, name, None, "333333333333")
    unowned_old = _staging(lake, name, None, "444444444444")
    _age(old, io.STAGING_MAX_AGE_HOURS + 1)
    _age(unowned_old, io.STAGING_MAX_AGE_HOURS + 1)
    other_target = _staging(lake, "predictions-dt=2026-01-06", "otherhostp14", "555555555555")
    _age(other_target, io.STAGING_MAX_AGE_HOURS + 1)
    with caplog.at_level("WARNING", logger="mlops_provider.core.io"):
        io.write_partition(_table(2), str(lake / "predictions" / DAY))
    assert _hidden(lake) == sorted([fresh.name, unowned_fresh.name, other_target.name])
    messages = [r.getMessage() for r in caplog.records]
    assert any(str(old) in m and "owner otherhostp13" in m and "age 9" in m for m in messages)
    assert any(str(unowned_old) in m and "owner unknown" in m for m in messages)


def test_other_files_beside_the_dataset_are_not_leftovers(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    keep = [lake / ".staging-junk", lake / f".staging-predictions-{DAY}-abc"]
    for path in keep:
        path.mkdir(parents=True)
        _age(path, 1000)
    io.write_partition(_table(2), str(lake / "predictions" / DAY))
    assert all(path.exists() for path in keep)


def test_remove_staging_leftovers_reports_what_it_removed(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    dead = f"{host_id()}p{_dead_pid()}"
    leftover = _staging(lake, f"predictions-{DAY}", dead)
    removed = io.remove_staging_leftovers(str(lake / "predictions" / DAY))
    assert [(r["path"], r["owner"], r["reason"]) for r in removed] == [
        (str(leftover), dead, "its writer is dead")
    ]
    assert removed[0]["age_seconds"] >= 0


def test_version_store_staging_of_a_dead_writer_is_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLOPS_VERSIONS_MAX_AGE_DAYS", raising=False)
    monkeypatch.delenv("MLOPS_VERSIONS_KEEP", raising=False)
    part = tmp_path / "lake" / "predictions" / DAY
    io.write_partition(_table(2), str(part))
    root = tmp_path / "lake" / versions.VERSIONS_DIR / "predictions" / DAY
    root.mkdir(parents=True)
    dead = root / f".staging-0123456789abcdef-{host_id()}p{_dead_pid()}-0123456789ab"
    live = root / f".staging-0123456789abcdef-{this_owner()}-0123456789ab"
    other_old = root / "._staging-unrelated"
    for path in (dead, live, other_old):
        path.mkdir()
    io.write_partition(_table(3), str(part))  # retains the 2 rows: a retain in this root
    assert not dead.exists() and live.exists() and other_old.exists()
    assert [v["rows"] for v in io.list_versions(str(part))] == [3, 2]
