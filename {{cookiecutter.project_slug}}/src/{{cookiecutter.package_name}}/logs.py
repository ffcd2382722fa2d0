"""One JSON object per log line, each carrying the id of the request it belongs to."""

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from itertools import islice
from typing import Any, TextIO

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

# A LogRecord sets its own attributes first; what `extra=` passed comes after them, and is
# logged, but for what other formatters add (uvicorn's copy of its message in colours).
_RECORD_ATTRIBUTE_COUNT = len(vars(logging.makeLogRecord({})))
_NOT_EXTRA = frozenset({"message", "asctime", "color_message"})
# Made once: `json.dumps(..., default=str)` would make a new encoder for every line.
_ENCODER = json.JSONEncoder(default=str)


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
        return _ENCODER.encode(entry)

    def _timestamp(self, created: float) -> str:
        """ISO 8601 in UTC to the microsecond, as `datetime.isoformat` writes it."""
        whole = int(created)
        second, text = self._second
        if second != whole:
            text = datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (whole, text)
        return f"{text}.{int((created - whole) * 1e6):06d}+00:00"


class LineHandler(logging.StreamHandler[TextIO]):
    """A StreamHandler that leaves flushing to the stream: stderr is line-buffered, so each
    line is written out as it ends anyway, and a flush call per line only costs time."""

    def flush(self) -> None:
        return


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
