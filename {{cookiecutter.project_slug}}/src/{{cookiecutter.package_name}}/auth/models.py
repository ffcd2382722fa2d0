"""The tables auth owns. Their schema changes only through the migrations in `migrations/`."""

from datetime import datetime
from decimal import ROUND_CEILING, Decimal

from sqlalchemy import BigInteger, CheckConstraint, DateTime, MetaData, String, func, true
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# FTNS are stored as whole micro-FTNS: sums are exact and a charge is one integer UPDATE.
MICRO_FTNS = 1_000_000


def to_micro_ftns(ftns: Decimal | float) -> int:
    """Rounded up, so that a charge is never smaller than what PRSM reported."""
    micro = Decimal(str(ftns)) * MICRO_FTNS
    return int(micro.to_integral_value(rounding=ROUND_CEILING))


def from_micro_ftns(micro: int) -> Decimal:
    return Decimal(micro) / MICRO_FTNS


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class User(Base):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("quota_micro_ftns >= 0", name="quota_not_negative"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    quota_micro_ftns: Mapped[int] = mapped_column(BigInteger)
    is_active: Mapped[bool] = mapped_column(server_default=true())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    @property
    def quota(self) -> Decimal:
        """The FTNS this user may still spend."""
        return from_micro_ftns(self.quota_micro_ftns)


class LoginFailures(Base):
    """Failed logins per username or client address, shared by every worker of the service."""

    __tablename__ = "login_failures"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    failures: Mapped[int]
    # Unix time of the first failure of the current window.
    window_started_at: Mapped[float]
