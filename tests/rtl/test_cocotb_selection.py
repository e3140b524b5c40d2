"""A cocotb run that selects no test fails: cocotb itself passes a filter that matches nothing (a typo) and reports
zero tests, which would let a bench check nothing and still pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinycompile.accel.simulate import NoTestsRan, build, check_results, run_cocotb, run_jobs, unit_sources


def _xml(path: Path, cases: str) -> Path:
    """A results file as cocotb writes it, with the given <testcase> elements."""
    path.write_text(f'<testsuites><testsuite name="all" package="all">{cases}</testsuite></testsuites>')
    return path


def test_results_without_a_test_fail(tmp_path: Path) -> None:
    """No test case, or only skipped ones, is a failure that names what was selected."""
    with pytest.raises(NoTestsRan, match="module 'cb_units' with test filter 'typo'"):
        check_results(_xml(tmp_path / "none.xml", ""), "module 'cb_units' with test filter 'typo'")
    skipped = '<testcase name="a" classname="m"><skipped /></testcase>'
    with pytest.raises(NoTestsRan):
        check_results(_xml(tmp_path / "skipped.xml", skipped))


def test_results_with_failures_or_passes(tmp_path: Path) -> None:
    """A failure or error names the test; passing tests are counted; a missing file fails."""
    passed = '<testcase name="a" classname="m" />'
    assert check_results(_xml(tmp_path / "ok.xml", passed + '<testcase name="b" classname="m"><skipped /></testcase>')) == 1
    for bad in ("failure", "error"):
        with pytest.raises(AssertionError, match=f"m.b reported a {bad}") as info:
            check_results(_xml(tmp_path / f"{bad}.xml", passed + f'<testcase name="b" classname="m"><{bad} /></testcase>'))
        assert not isinstance(info.value, NoTestsRan)
    with pytest.raises(AssertionError, match="without a results file"):
        check_results(tmp_path / "missing.xml")


def test_a_filter_typo_fails_the_run(tmp_path: Path) -> None:
    """On a real simulator run: a filter that matches no test of the module raises NoTestsRan; the right one passes."""
    bdir = build("tc_requant", unit_sources("tc_requant.sv"), {}, "unit_requant")
    with pytest.raises(NoTestsRan, match="requant_lnae"):
        run_cocotb("tc_requant", bdir, "cb_units", tmp_path / "typo", test_filter="requant_lnae")
    # the filter must come through test_filter, where the empty selection is caught, not through the environment
    with pytest.raises(ValueError, match="test_filter"):
        run_cocotb("tc_requant", bdir, "cb_units", tmp_path / "env", {"COCOTB_TEST_FILTER": "requant_lane"})


def test_no_jobs_is_an_error() -> None:
    """An empty job list would start the simulator and check nothing."""
    with pytest.raises(ValueError, match="at least one job"):
        run_jobs([], n=8)
