"""benchmarks._samples: the per-request CSV survives a round trip unrounded."""

from pathlib import Path

from benchmarks._samples import COLUMNS, Sample, read_samples, write_samples


def test_samples_round_trip_through_csv_with_a_header(tmp_path: Path) -> None:
    samples = [
        Sample(1795883222.538548, "closed", "HealthUser", "GET", "/health", 13.775, True, True),
        Sample(
            1795883222.6,
            "open",
            "BackgroundOpenUser",
            "POST",
            "/p?mode=x",
            201.5,
            False,
            True,
            1.25,
        ),
        Sample(1795883222.7, "probe", "probe", "GET", "/health", 0.5, True, False, 0.1),
    ]
    path = tmp_path / "requests.csv"
    assert write_samples(path, samples) == 3
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert list(read_samples(path)) == samples
