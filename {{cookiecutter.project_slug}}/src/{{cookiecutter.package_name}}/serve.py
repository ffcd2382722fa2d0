"""The production start command: `python -m {{ cookiecutter.package_name }}.serve [UVICORN OPTIONS]`.

It is `uvicorn --factory {{ cookiecutter.package_name }}.main:create_app`, options and UVICORN_*
variables included (WEB_CONCURRENCY for `--workers`), with two differences:

- Its exit status after a stop is 0. Once its graceful shutdown is complete, uvicorn raises the
  SIGTERM it caught once more, so as to end as killed by it: under an init process (compose's
  `init: true`) a clean stop would exit 143. Here that second SIGTERM, like one that comes
  before the server has started, ends the process with 0.
- With several workers on Linux, each worker listens on a socket of its own, all bound to the
  same address with SO_REUSEPORT, and the kernel spreads new connections evenly over them.
  uvicorn's workers share one socket instead, and whichever wakes first accepts every
  connection waiting: a burst of keep-alive connections can land on one worker and leave the
  others idle for as long as they last. uvicorn's supervisor (health checks, restarts,
  signals) runs the workers either way.
"""

import logging
import signal
import socket
import sys
from types import FrameType
from typing import Any

import click
import uvicorn
from uvicorn.config import LOGGING_CONFIG, STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

APP = "{{ cookiecutter.package_name }}.main:create_app"
# Linux balances connections over the sockets of a SO_REUSEPORT group; other systems allow the
# option but may hand every connection to one socket.
BALANCED_WORKERS = sys.platform == "linux" and hasattr(socket, "SO_REUSEPORT")

logger = logging.getLogger("uvicorn.error")


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def main(options: list[str]) -> None:
    # uvicorn swaps in its own handler while it serves and puts this one back afterwards.
    signal.signal(signal.SIGTERM, _exit_cleanly)
    # uvicorn's command line, options, variables and --help included, calling `_serve`.
    command = click.Command(
        "serve",
        params=uvicorn.main.params,
        callback=_serve,
        context_settings=uvicorn.main.context_settings,
    )
    command.main(["--factory", APP, *options])


def _serve(**options: Any) -> None:
    config = _config(dict(options))
    if _balances_workers(config):
        _serve_workers(config)
    else:
        uvicorn.main.callback(**options)  # type: ignore[misc]  # uvicorn's `main` function


def _config(options: dict[str, Any]) -> uvicorn.Config:
    """The Config that `uvicorn` makes of the same options."""
    app = options.pop("app")
    app_dir = options.pop("app_dir")
    if app_dir is not None:
        sys.path.insert(0, app_dir)
    if options["log_config"] is None:
        options["log_config"] = LOGGING_CONFIG
    return uvicorn.Config(app, **options)


def _balances_workers(config: uvicorn.Config) -> bool:
    """Several workers on a TCP address, without the reloader (which runs one)."""
    return (
        BALANCED_WORKERS
        and config.workers > 1
        and not config.should_reload
        and config.uds is None
        and config.fd is None
    )


def _serve_workers(config: uvicorn.Config) -> None:
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    address = _AddressHolder(family, socket.SOCK_STREAM)
    try:
        _join_group(address, (config.host, config.port))
    except OSError as exc:
        logger.error(exc)
        sys.exit(STARTUP_FAILURE)
    host, port = address.getsockname()[:2]
    logger.info("Uvicorn running on http://%s:%d (Press CTRL+C to quit)", host, port)
    try:
        Multiprocess(config, sockets=[address]).run()
    finally:
        address.close()


class _AddressHolder(socket.socket):
    """The supervisor's socket: bound to the address (a port of 0 gets its number here), never
    listening. Handed to a worker process, it arrives there as a socket of the worker's own,
    bound to the same address in the same group, which the worker listens on."""

    def __reduce__(self) -> tuple[Any, ...]:
        return _group_member, (self.family, self.getsockname())


def _group_member(family: int, address: Any) -> socket.socket:
    member = socket.socket(family, socket.SOCK_STREAM)
    _join_group(member, address)
    return member


def _join_group(member: socket.socket, address: Any) -> None:
    member.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    member.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    member.bind(address)


if __name__ == "__main__":
    main(sys.argv[1:])
