"""The start command for several workers, before the server: fresh multi-process metrics.

Creates `PROMETHEUS_MULTIPROC_DIR` and empties it of the values a previous run left there,
then becomes COMMAND (so the server gets the signals itself). A tmpfs directory suits it:

    export PROMETHEUS_MULTIPROC_DIR=/dev/shm/{{ cookiecutter.project_slug }}-metrics
    python -m {{ cookiecutter.package_name }}.metrics \\
        python -m {{ cookiecutter.package_name }}.serve --workers 4 --log-config logging.yaml
"""

import os
import sys
from pathlib import Path


def prepare(directory: Path) -> None:
    """Only prometheus_client's value files go: a mistyped path loses nothing else."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


def main(command: list[str]) -> None:
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        prepare(Path(directory))
    if command:
        os.execvp(command[0], command)  # noqa: S606  # nosec B606  # the operator's own command


if __name__ == "__main__":
    main(sys.argv[1:])
