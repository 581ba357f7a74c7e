"""The reference project's samples (include/sample_data) are what include/make_sample_data.py
writes: regenerate them with ``python -m include.make_sample_data`` after changing it or the
simulator."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pandas.testing as pdt

from include import make_sample_data

ROOT = Path(__file__).resolve().parents[2]


def test_committed_samples_are_what_the_generator_writes(tmp_path: Path) -> None:
    written = make_sample_data.write(tmp_path)
    assert set(written) == set(make_sample_data.FILES)
    committed = {
        p.relative_to(make_sample_data.DEFAULT_OUT).as_posix()
        for p in make_sample_data.DEFAULT_OUT.rglob("*.parquet")
    }
    assert committed == set(make_sample_data.FILES.values())
    for name, path in written.items():
        expected = pd.read_parquet(path)
        actual = pd.read_parquet(make_sample_data.DEFAULT_OUT / make_sample_data.FILES[name])
        pdt.assert_frame_equal(actual, expected, check_exact=True, obj=name)
