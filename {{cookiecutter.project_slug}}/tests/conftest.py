"""The tests' fixtures are in fixtures.py, loaded by each process that runs tests.

pytest-xdist's controller (`-n auto`, this project's default) hands the tests to its workers and
runs none of them: without the fixtures it does not import the app, and the workers start a
second or two sooner.
"""

import pytest


def pytest_configure(config: pytest.Config) -> None:
    distributing = config.getoption("dist", "no") != "no" and not config.option.collectonly
    if hasattr(config, "workerinput") or not distributing:
        config.pluginmanager.import_plugin("tests.fixtures")
