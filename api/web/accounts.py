"""People who sign in to the web app: an email, a role, and an argon2id hash of the password.

Roles: `viewer` reads; `coordinator` and `investigator` also enrol and record; `admin` also
manages the site feed and the accounts. API keys stay for machines; these accounts are for
people. An account is disabled, never deleted: the history names people by email.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine

from api.persistence.records import utc
from api.persistence.tables import users

ROLES = ("viewer", "coordinator", "investigator", "admin")
RECORDING_ROLES = ("coordinator", "investigator", "admin")
MIN_PASSWORD = 12
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}\.[^@\s.]{1,63}$")

HASHER = PasswordHasher()  # argon2id with the library's current RFC 9106 parameters
# Verified against when the email is unknown, so a miss costs as much time as a hit.
_DUMMY = HASHER.hash("an unknown account still costs one verification")


@dataclass(frozen=True)
class User:
    id: str
    email: str
    role: str

    # What Flask-Login asks of a user object.
    is_active: bool = True
    is_authenticated: bool = True
    is_anonymous: bool = False

    def get_id(self) -> str:
        return self.id

    @property
    def can_record(self) -> bool:
        return self.role in RECORDING_ROLES

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class AccountError(ValueError):
    """A refused account change: the form field at fault and a code the pages word in the
    reader's language; the message is the command line's."""

    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.code = code


@dataclass(frozen=True)
class Account:
    """An account as the admins' page lists it."""

    id: str
    email: str
    role: str
    created_at: dt.datetime
    disabled_at: dt.datetime | None


@dataclass
class Accounts:
    engine: Engine

    def create(self, email: str, role: str, password: str) -> User:
        """A new account; the same rules for the command line and the admins' page."""
        email = email.strip().lower()
        if not EMAIL.match(email):
            raise AccountError("email", "email", f"{email!r} is not an email address")
        if role not in ROLES:
            raise AccountError("role", "role", f"role must be one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD:
            raise AccountError("password", "short_password",
                               f"the password needs at least {MIN_PASSWORD} characters")
        user = User(str(uuid.uuid4()), email, role)
        with self.engine.begin() as connection:
            if connection.execute(sa.select(users.c.id).where(users.c.email == email)).first():
                raise AccountError("email", "exists", f"an account for {email} exists")
            connection.execute(users.insert().values(
                id=user.id, email=email, role=role, password_hash=HASHER.hash(password),
                created_at=dt.datetime.now(dt.UTC)))
        return user

    def listing(self) -> list[Account]:
        """Every account, disabled ones too, by email."""
        with self.engine.connect() as connection:
            rows = connection.execute(sa.select(
                users.c.id, users.c.email, users.c.role, users.c.created_at,
                users.c.disabled_at).order_by(users.c.email)).all()
        return [Account(row.id, row.email, row.role, utc(row.created_at),
                        utc(row.disabled_at) if row.disabled_at else None) for row in rows]

    def set_role(self, user_id: str, role: str) -> None:
        """Give an account another role; the last active admin stays an admin, so someone
        can always manage the accounts."""
        if role not in ROLES:
            raise AccountError("role", "role", f"role must be one of {', '.join(ROLES)}")
        with self.engine.begin() as connection:
            row = self._locked(connection, user_id)
            if row.role == "admin" and role != "admin" and row.disabled_at is None:
                self._keep_an_admin(connection, user_id)
            connection.execute(users.update().where(users.c.id == user_id).values(role=role))

    def disable(self, user_id: str) -> None:
        """The account can no longer sign in, and a session it has ends at its next request.
        The last active admin cannot be disabled."""
        with self.engine.begin() as connection:
            row = self._locked(connection, user_id)
            if row.disabled_at is not None:
                return
            if row.role == "admin":
                self._keep_an_admin(connection, user_id)
            connection.execute(users.update().where(users.c.id == user_id).values(
                disabled_at=dt.datetime.now(dt.UTC)))

    def enable(self, user_id: str) -> None:
        """A disabled account can sign in again, with its old password."""
        with self.engine.begin() as connection:
            self._locked(connection, user_id)
            connection.execute(users.update().where(users.c.id == user_id).values(
                disabled_at=None))

    @staticmethod
    def _locked(connection: sa.Connection, user_id: str) -> sa.Row[Any, Any]:
        row = connection.execute(sa.select(users.c.role, users.c.disabled_at).where(
            users.c.id == user_id).with_for_update()).first()
        if row is None:
            raise AccountError("user", "unknown", "no such account")
        return row

    @staticmethod
    def _keep_an_admin(connection: sa.Connection, leaving: str) -> None:
        others = connection.execute(sa.select(sa.func.count()).select_from(users).where(
            users.c.role == "admin", users.c.disabled_at.is_(None),
            users.c.id != leaving)).scalar_one()
        if not others:
            raise AccountError("role", "last_admin", "the last active admin must stay one")

    def get(self, user_id: str) -> User | None:
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(users).where(
                users.c.id == user_id, users.c.disabled_at.is_(None))).mappings().first()
        return User(row["id"], row["email"], row["role"]) if row else None

    def authenticate(self, email: str, password: str) -> User | None:
        """The account behind an email and password, or None; as slow for an unknown email as
        for a wrong password."""
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(users).where(
                users.c.email == email.strip().lower(),
                users.c.disabled_at.is_(None))).mappings().first()
        try:
            HASHER.verify(row["password_hash"] if row else _DUMMY, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        if HASHER.check_needs_rehash(row["password_hash"]):
            with self.engine.begin() as connection:
                connection.execute(users.update().where(users.c.id == row["id"]).values(
                    password_hash=HASHER.hash(password)))
        return User(row["id"], row["email"], row["role"])
