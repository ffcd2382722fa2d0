"""The tests' fixtures are in fixtures.py, loaded by each process that runs tests.

pytest-xdist's controller (`-n auto`, this project's default) hands the tests to its workers and
runs none of them: without the fixtures it does not import the app, and the workers start a
second or two sooner.
"""

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    distributing = config.getoption("dist", "no") != "no" and not config.option.collectonly
    if hasattr(config, "workerinput") or not distributing:
        config.pluginmanager.import_plugin("tests.fixtures")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto`: one worker more than the cores this process may run on. Part of every run
    waits, on servers starting in processes of their own and on the delays and timeouts the
    tests provoke, and the extra worker keeps the cores busy meanwhile.
    PYTEST_XDIST_AUTO_NUM_WORKERS still decides where it is set."""
    if "PYTEST_XDIST_AUTO_NUM_WORKERS" in os.environ:
        return None
    return len(os.sched_getaffinity(0)) + 1 if hasattr(os, "sched_getaffinity") else None
