import pytest
from pydantic import ValidationError

from {{ cookiecutter.package_name }}.auth.config import DEVELOPMENT_SECRET_KEY, EXAMPLE_SECRET_KEY
from {{ cookiecutter.package_name }}.config import Settings
from tests.auth.helpers import TEST_SECRET_KEY


@pytest.mark.parametrize(
    ("secret_key", "message"),
    [
        ("", "at least 32 bytes"),
        ("s" * 31, "at least 32 bytes"),
        (EXAMPLE_SECRET_KEY, "example key"),
        (DEVELOPMENT_SECRET_KEY, "example key"),
    ],
    ids=["empty", "short", "example", "development default"],
)
def test_production_refuses_an_unsafe_secret_key(secret_key: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, environment="production", secret_key=secret_key)


def test_production_refuses_the_default_secret_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)

    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None, environment="production")


def test_production_accepts_a_strong_secret_key() -> None:
    settings = Settings(_env_file=None, environment="production", secret_key=TEST_SECRET_KEY)

    assert settings.secret_key.get_secret_value() == TEST_SECRET_KEY


def test_development_runs_with_the_labelled_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)

    settings = Settings(_env_file=None, environment="development")

    assert settings.secret_key.get_secret_value() == DEVELOPMENT_SECRET_KEY


def test_the_secret_key_is_not_shown() -> None:
    settings = Settings(_env_file=None, secret_key=TEST_SECRET_KEY)

    assert TEST_SECRET_KEY not in repr(settings)
