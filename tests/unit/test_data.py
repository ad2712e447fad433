"""Reading labelled streams: CSV files and the synthetic drifting stream."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from streamer.data import (
    bundled_stream,
    default_data_dir,
    find_stream,
    iter_csv_batches,
    synthetic_stream,
)

CSV = "a,b,label\n1,2,0\n3,4.5,1\n-1,0,2\n"


@pytest.fixture(params=["plain", "gzip"])
def csv_path(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    if request.param == "gzip":
        path = tmp_path / "stream.csv.gz"
        path.write_bytes(gzip.compress(CSV.encode()))
    else:
        path = tmp_path / "stream.csv"
        path.write_text(CSV)
    return path


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    return path


def test_reads_plain_and_gzip_csv_in_batches(csv_path: Path) -> None:
    batches = list(iter_csv_batches(csv_path, batch_size=2))
    assert [len(y) for _, y, _ in batches] == [2, 1]
    X, y, names = batches[0]
    assert names == ["a", "b"]
    assert X.dtype == np.float64 and X.tolist() == [[1.0, 2.0], [3.0, 4.5]]
    assert y.dtype.kind == "i" and y.tolist() == [0, 1]


def test_non_numeric_value_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b,label\n1,2,0\n3,oops,1\n")
    with pytest.raises(ValueError, match=r"line 3, column 'b': 'oops' is not a number"):
        list(iter_csv_batches(path))


def test_missing_label_column_is_explained(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b,target\n1,2,0\n")
    with pytest.raises(ValueError, match="last column must be 'label'"):
        list(iter_csv_batches(path))


def test_non_integer_label_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "a,label\n1,0.5\n")
    with pytest.raises(ValueError, match="line 2, column 'label': '0.5' is not an integer"):
        list(iter_csv_batches(path))


def test_ragged_row_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "a,b,label\n1,2,0\n1,0\n")
    with pytest.raises(ValueError, match="line 3 has 2 values, the header has 3"):
        list(iter_csv_batches(path))


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such data file"):
        list(iter_csv_batches(tmp_path / "nope.csv"))


def test_synthetic_stream_is_deterministic_and_batched() -> None:
    a = list(synthetic_stream(250, seed=3, batch_size=100))
    b = list(synthetic_stream(250, seed=3, batch_size=100))
    assert [len(y) for _, y, _ in a] == [100, 100, 50]
    for (Xa, ya, names), (Xb, yb, _) in zip(a, b, strict=True):
        np.testing.assert_array_equal(Xa, Xb)
        np.testing.assert_array_equal(ya, yb)
        assert names == ["x0", "x1", "x2"]
    assert set(np.concatenate([y for _, y, _ in a]).tolist()) == {0, 1}


def test_synthetic_stream_changes_concept_halfway() -> None:
    (X, y, _), = synthetic_stream(4_000, seed=0, batch_size=4_000)
    # SEA labels x0 + x1 > threshold as 1: threshold 8 before the drift, 7 after.
    in_between = (X[:, 0] + X[:, 1] > 7.2) & (X[:, 0] + X[:, 1] < 7.8)
    first, second = in_between.copy(), in_between.copy()
    first[2_000:], second[:2_200] = False, False
    assert y[first].mean() < 0.3 and y[second].mean() > 0.7


def test_data_dir_can_be_overridden_by_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STREAMER_DATA_DIR", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.setenv("STREAMER_DATA_DIR", str(tmp_path / "absent"))
    assert default_data_dir() is None


@pytest.mark.parametrize(("name", "shape", "classes"), [
    ("digits_frames.csv.gz", (1797, 64), 10),
    ("phishing.csv.gz", (1250, 9), 2),
])
def test_the_package_ships_its_small_streams_whole(name: str, shape: tuple[int, int], classes: int) -> None:
    X, y, names = next(iter_csv_batches(bundled_stream(name), batch_size=10_000))
    assert X.shape == shape and len(names) == shape[1]
    assert sorted(set(y.tolist())) == list(range(classes))


def test_a_stream_missing_from_the_data_dir_is_found_in_the_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STREAMER_DATA_DIR", str(tmp_path))
    assert find_stream("phishing.csv.gz") == bundled_stream("phishing.csv.gz")
    (tmp_path / "phishing.csv.gz").write_bytes(gzip.compress(CSV.encode()))
    assert find_stream("phishing.csv.gz") == tmp_path / "phishing.csv.gz"
    assert find_stream("weather.csv.gz") is None  # a development stream, not shipped
    with pytest.raises(ValueError, match="ships digits_frames.csv.gz, phishing.csv.gz"):
        bundled_stream("weather.csv.gz")
