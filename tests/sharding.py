"""`--shard=I/N`: keep the I-th of N slices of the template matrix, so CI can spread the
full matrix over N jobs.

Only tests parametrized by `combination` are divided; any other selected test runs in every
shard, so a shard job selects `tests/test_matrix.py`. Combinations are dealt out in the
order the matrix lists them (most features first), like cards: every shard gets a share of
the slow ones, and the N shards together hold each combination exactly once.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from typing import TypeVar

import pytest

T = TypeVar("T")

_SHAPE = re.compile(r"([1-9][0-9]*)/([1-9][0-9]*)")


def parse_shard(text: str) -> tuple[int, int]:
    """`"2/4"` -> `(2, 4)`; anything else is a usage error."""
    match = _SHAPE.fullmatch(text.strip())
    if not match or int(match.group(1)) > int(match.group(2)):
        raise argparse.ArgumentTypeError(f"{text!r} is not a shard like 2/4 (I/N, 1 <= I <= N)")
    return int(match.group(1)), int(match.group(2))


def shard_of(ordered: Sequence[T], index: int, count: int) -> list[T]:
    """The `index`-th (from 1) of `count` interleaved slices of `ordered`."""
    return list(ordered[index - 1 :: count])


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("template", "template matrix").addoption(
        "--shard",
        type=parse_shard,
        default=None,
        metavar="I/N",
        help="run only the I-th of N slices of the matrix combinations (CI shards the full "
        "matrix this way); tests without a combination are not affected",
    )


def _combination_id(item: pytest.Item) -> str | None:
    callspec = getattr(item, "callspec", None)
    combination = callspec.params.get("combination") if callspec else None
    return None if combination is None else str(combination.id)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    shard = config.getoption("shard")
    if shard is None:
        return
    ordered = list(dict.fromkeys(filter(None, map(_combination_id, items))))
    kept = {None, *shard_of(ordered, *shard)}
    selected: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        (selected if _combination_id(item) in kept else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected
