"""One JSON object per log line, each carrying the id of the request it belongs to."""

import asyncio
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from itertools import islice
from typing import Any, TextIO

import orjson

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
# The logger of the one line per request (middleware.py).
REQUEST_LOGGER = "{{ cookiecutter.package_name }}.requests"

# A LogRecord sets its own attributes first; what `extra=` passed comes after them, and is
# logged, but for what other formatters add (uvicorn's copy of its message in colours).
_RECORD_ATTRIBUTE_COUNT = len(vars(logging.makeLogRecord({})))
_NOT_EXTRA = frozenset({"message", "asctime", "color_message"})
# orjson, because the standard library's encoder takes several times as long for a line, and a
# busy server writes one per request; non-string keys in an extra's mapping are written too.
_ENCODING_OPTIONS = orjson.OPT_NON_STR_KEYS


class JsonFormatter(logging.Formatter):
    # The last second written, and its text: most lines share it with the line before.
    _second: tuple[int, str] = (0, "")

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": request_id_var.get(),
        }
        for key, value in islice(vars(record).items(), _RECORD_ATTRIBUTE_COUNT, None):
            if key not in _NOT_EXTRA:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str, option=_ENCODING_OPTIONS).decode()

    def _timestamp(self, created: float) -> str:
        """ISO 8601 in UTC to the microsecond, as `datetime.isoformat` writes it."""
        whole = int(created)
        second, text = self._second
        if second != whole:
            text = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (whole, text)
        return f"{text}.{int((created - whole) * 1e6):06d}+00:00"


class LineHandler(logging.StreamHandler[TextIO]):
    """Writes each line to the stream at once, but for the request lines logged on a running
    event loop: those wait until the loop has run the callbacks at hand, so that a busy server
    writes the lines of all the requests it served meanwhile with one system call instead of
    one each.

    Any other line (start, stop, warnings, errors) goes out at once, after the request lines
    still waiting: a process that ends by a signal right after it (uvicorn's workers do) loses
    none of them. A process killed mid-turn loses that turn's request lines."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._waiting: list[str] = []
        # The loop a flush is scheduled on; a loop closed before it ran one is replaced.
        self._flush_on: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # as logging's own handlers: report it, never raise into the caller
            self.handleError(record)
            return
        self._waiting.append(line)
        if record.name == REQUEST_LOGGER:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                pass
            else:
                if self._flush_on is not loop:
                    self._flush_on = loop
                    loop.call_soon(self.flush)
                return
        self.flush()

    def flush(self) -> None:
        self.acquire()
        try:
            self._flush_on = None
            if self._waiting:
                text = "\n".join(self._waiting) + "\n"
                self._waiting.clear()
                self.stream.write(text)
                self.stream.flush()
        except (OSError, ValueError):
            # The stream is gone (closed at exit, a full disk): raising here would send the
            # error to the loop's exception handler, which logs it, through this handler.
            pass
        finally:
            self.release()


def configure_logging(level: str) -> None:
    """Every logger through one JSON handler on stderr. uvicorn's own loggers too: started
    without `--log-config logging.yaml`, uvicorn gave them plain-text handlers of their own."""
    handler = LineHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
    logging.captureWarnings(True)
    # A line written per request must cost little: skip looking up what no line shows (the
    # logging HOWTO's "Optimization"), the caller's file and line among them.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    # One line per request, the request log's: uvicorn's access log would say it again,
    # unstructured, and httpx's line per PRSM call says less than the client's own.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("httpx").setLevel(logging.WARNING)
