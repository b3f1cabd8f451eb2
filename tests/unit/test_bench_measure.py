"""What the benchmarks print beside a figure: the load it was measured at, its spread, and `bench.api`'s
saturation point."""

import argparse
import functools
import gc

import pytest

from bench import measure


def test_the_saturation_point_is_the_highest_rate_served_under_the_p99_limit() -> None:
    steps = [(100, 99.5, 0.004), (200, 198.0, 0.009), (300, 297.0, 0.060), (400, 391.0, 0.240), (500, 310.0, 2.1)]
    assert measure.saturation(steps, 0.100) == 297.0
    assert measure.saturation(steps, 0.005) == 99.5
    assert measure.saturation(steps[3:], 0.100) is None


def test_a_spread_is_the_median_and_the_range_over_the_repeats() -> None:
    assert measure.spread([3.5, 2.9, 3.1], " s") == "3.10 s (2.90 to 3.50 over 3)"
    assert measure.spread([4.0], " ms", 1) == "4.0 ms"
    assert measure.spread([]) == "none"


def test_the_load_is_marked_above_two(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(measure.os, "getloadavg", lambda: (3.25, 1.0, 1.0))
    assert measure.load() == "load 3.25 (load above 2)"
    monkeypatch.setattr(measure.os, "getloadavg", lambda: (0.5, 1.0, 1.0))
    assert measure.load() == "load 0.50"


def test_a_list_argument_that_is_not_numbers_is_the_commands_error_named(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--identify", type=measure.whole_numbers, default="0")
    parser.add_argument("--batches", type=functools.partial(measure.whole_numbers, least=1), default="100,1000")
    parser.add_argument("--rates", type=measure.rates, default="200")
    assert vars(parser.parse_args([])) == {"identify": [0], "batches": [100, 1000], "rates": [200.0]}
    assert parser.parse_args(["--identify", "0,20", "--rates", "100,2.5e2"]).rates == [100.0, 250.0]
    for arguments, named in ((["--identify", "0,x"], "'x' is not a whole number"),
                             (["--batches", "100,0"], "'0' is not a whole number of at least 1"),
                             (["--rates", "200,-1"], "'-1' is not a rate above zero")):  # fmt: skip
        with pytest.raises(SystemExit):
            parser.parse_args(arguments)
        assert named in capsys.readouterr().err, arguments


def test_the_sender_collects_no_garbage_during_a_step() -> None:
    assert gc.isenabled()
    with measure.collector_paused():
        assert not gc.isenabled()
        collections = gc.get_stats()[0]["collections"]
        garbage: list[list[int]] = [[] for _ in range(3 * gc.get_threshold()[0])]  # enough for a collection
        assert gc.get_stats()[0]["collections"] == collections
        del garbage
    assert gc.isenabled()
