"""Lists the project files this process opens, for the matrix's step reuse (step_reuse.py).

Python imports this module at start-up from PYTHONPATH, so the tests, commands and security
steps put its directory there for every Python process they start (and those start).
Each path under TEMPLATE_OPENED_FILES_ROOT that the process opens is appended, once, to the
file that TEMPLATE_OPENED_FILES names; os.write raises no audit event of its own, so the
hook cannot call itself. A child forked from such a process keeps the hook.
"""

import os
import sys

_LISTING = os.environ.get("TEMPLATE_OPENED_FILES")
_ROOT = os.environ.get("TEMPLATE_OPENED_FILES_ROOT")

if _LISTING and _ROOT:
    _root = os.path.join(os.path.abspath(_ROOT), "")
    _seen: set[str] = set()
    _fd = os.open(_LISTING, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def _record(event: str, args: tuple[object, ...]) -> None:
        if event != "open" or not args:
            return
        path = args[0]
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        if not isinstance(path, str) or path in _seen:
            return
        _seen.add(path)
        absolute = os.path.abspath(path)
        if absolute.startswith(_root):
            os.write(_fd, (absolute + "\n").encode("utf-8", "surrogateescape"))

    sys.addaudithook(_record)
