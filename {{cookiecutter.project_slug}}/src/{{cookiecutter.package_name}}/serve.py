"""The image's start command: `python -m {{ cookiecutter.package_name }}.serve [UVICORN OPTIONS]`.

It is `uvicorn --factory {{ cookiecutter.package_name }}.main:create_app`, options and UVICORN_*
variables included, but for the exit status of a stop. Once its graceful shutdown is complete,
uvicorn raises the SIGTERM it caught once more, so as to end as killed by it. Under an init
process (compose's `init: true`) a clean stop then exits 143, while as PID 1 or with several
workers it exits 0. Here that second SIGTERM ends the process with 0 every time, as does a
SIGTERM that comes before the server has started.
"""

import signal
import sys
from types import FrameType

import uvicorn

APP = "{{ cookiecutter.package_name }}.main:create_app"


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def main(options: list[str]) -> None:
    # uvicorn swaps in its own handler while it serves and puts this one back afterwards.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    uvicorn.main(["--factory", APP, *options])


if __name__ == "__main__":
    main(sys.argv[1:])
