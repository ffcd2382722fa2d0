"""The log handler: request lines may wait for the end of the event loop's turn, to be written
together; no line is lost or put out of order by it."""

import asyncio
import io
import json
import logging

from {{ cookiecutter.package_name }}.logs import REQUEST_LOGGER, JsonFormatter, LineHandler


def handler_on(stream: io.StringIO) -> LineHandler:
    handler = LineHandler(stream)
    handler.setFormatter(JsonFormatter())
    return handler


def record(logger: str, message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.makeLogRecord({"name": logger, "msg": message, "levelno": level})


def messages(stream: io.StringIO) -> list[str]:
    return [json.loads(line)["message"] for line in stream.getvalue().splitlines()]


async def test_request_lines_wait_for_the_turn_to_end_and_other_lines_go_out_after_them() -> None:
    stream = io.StringIO()
    handler = handler_on(stream)

    handler.handle(record(REQUEST_LOGGER, "first request"))
    handler.handle(record(REQUEST_LOGGER, "second request"))
    waiting = messages(stream)
    handler.handle(record("uvicorn.error", "Shutting down"))
    after_the_other_line = messages(stream)
    handler.handle(record(REQUEST_LOGGER, "third request"))
    await asyncio.sleep(0)

    assert waiting == []
    assert after_the_other_line == ["first request", "second request", "Shutting down"]
    assert messages(stream) == [*after_the_other_line, "third request"]


def test_without_an_event_loop_every_line_goes_out_at_once() -> None:
    stream = io.StringIO()
    handler = handler_on(stream)

    handler.handle(record(REQUEST_LOGGER, "request"))

    assert messages(stream) == ["request"]


async def test_lines_still_waiting_are_written_when_logging_shuts_down() -> None:
    stream = io.StringIO()
    handler = handler_on(stream)

    handler.handle(record(REQUEST_LOGGER, "request"))
    handler.flush()  # what logging.shutdown() does for every handler at exit

    assert messages(stream) == ["request"]
