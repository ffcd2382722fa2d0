"""`.env.example` documents the settings: it names every one of them, with its default."""

from pathlib import Path

from pydantic import SecretStr

from {{ cookiecutter.package_name }}.config import Settings

ENV_EXAMPLE = Path(__file__).resolve().parent.parent / ".env.example"


def test_every_setting_is_in_the_example() -> None:
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    named = {line.split("=", 1)[0] for line in lines if "=" in line and not line.startswith("#")}

    missing = {name.upper() for name in Settings.model_fields} - named

    assert not missing, f"add to .env.example: {sorted(missing)}"


def test_the_example_holds_the_defaults() -> None:
    example = Settings(_env_file=ENV_EXAMPLE).model_dump()
    defaults = Settings(_env_file=None).model_dump()

    # Secrets are the exception: the example's is a placeholder, which production refuses.
    differing = {
        name
        for name, value in example.items()
        if value != defaults[name] and not isinstance(value, SecretStr)
    }

    assert not differing, f".env.example differs from the defaults in {sorted(differing)}"
