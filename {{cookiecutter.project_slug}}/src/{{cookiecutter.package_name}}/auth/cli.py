"""Manage the service's users from the command line: `{{ cookiecutter.package_name }} --help`."""

import argparse
import asyncio
import getpass
import sys
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from {{ cookiecutter.package_name }}.auth.database import open_database, sessions_for
from {{ cookiecutter.package_name }}.auth.security import passwords_for
from {{ cookiecutter.package_name }}.auth.users import (
    UserError,
    check_password,
    create_user,
    list_users,
    set_active,
    set_password_hash,
    set_quota,
)
from {{ cookiecutter.package_name }}.config import Settings


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        asyncio.run(_run(args, Settings()))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SQLAlchemyError as exc:
        print(f"error: the database refused: {exc}", file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="{{ cookiecutter.package_name }}",
        description="Manage the users of the service, in the database DATABASE_URL names.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    create = commands.add_parser(
        "create-user",
        help="add a user",
        description="Add a user. The password is asked for without echo, or read from the "
        "first line of standard input when that is not a terminal.",
    )
    create.add_argument("username")
    create.add_argument("--quota", type=_ftns, required=True, help="FTNS the user may spend")

    quota = commands.add_parser("set-quota", help="set the FTNS a user may still spend")
    quota.add_argument("username")
    quota.add_argument("quota", type=_ftns)

    password = commands.add_parser("set-password", help="give a user a new password")
    password.add_argument("username")

    deactivate = commands.add_parser("deactivate", help="refuse a user's logins and tokens")
    deactivate.add_argument("username")

    activate = commands.add_parser("activate", help="let a deactivated user in again")
    activate.add_argument("username")

    commands.add_parser("list-users", help="list every user with quota and state")
    return parser


def _ftns(value: str) -> Decimal:
    try:
        quota = Decimal(value)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if not quota.is_finite() or quota < 0:
        raise argparse.ArgumentTypeError("a quota is 0 FTNS or more")
    return quota


async def _run(args: argparse.Namespace, settings: Settings) -> None:
    async with open_database(settings) as database:
        sessions = sessions_for(database)
        match args.command:
            case "create-user":
                password = _read_password()
                await create_user(
                    sessions, passwords_for(settings), args.username, password, args.quota
                )
                print(f"created {args.username} with {args.quota} FTNS")
            case "set-quota":
                await set_quota(sessions, args.username, args.quota)
                print(f"{args.username} may spend {args.quota} FTNS")
            case "set-password":
                password_hash = await passwords_for(settings).hash(_read_password())
                await set_password_hash(sessions, args.username, password_hash)
                print(f"new password set for {args.username}")
            case "deactivate" | "activate":
                active = args.command == "activate"
                await set_active(sessions, args.username, active=active)
                print(f"{args.username} {'activated' if active else 'deactivated'}")
            case "list-users":
                await _print_users(sessions)


def _read_password() -> str:
    if sys.stdin.isatty():
        password = getpass.getpass("Password: ")
        if getpass.getpass("Repeat it: ") != password:
            raise UserError("the passwords differ")
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    return check_password(password)


async def _print_users(sessions: async_sessionmaker[AsyncSession]) -> None:
    users = await list_users(sessions)
    width = max([len("USERNAME"), *(len(user.username) for user in users)])
    print(f"{'USERNAME':<{width}}  {'QUOTA (FTNS)':>14}  {'STATE':<8}  CREATED")
    for user in users:
        state = "active" if user.is_active else "inactive"
        created = user.created_at.strftime("%Y-%m-%d %H:%M")
        print(f"{user.username:<{width}}  {user.quota.normalize():>14f}  {state:<8}  {created}")
