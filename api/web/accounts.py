"""People who sign in to the web app: an email, a role, and an argon2id hash of the password.

Roles: `viewer` reads; `coordinator` and `investigator` also enrol and record; `admin` also
manages the site feed. API keys stay for machines; these accounts are for people.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Engine

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


@dataclass
class Accounts:
    engine: Engine

    def create(self, email: str, role: str, password: str) -> User:
        email = email.strip().lower()
        if not EMAIL.match(email):
            raise ValueError(f"{email!r} is not an email address")
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD:
            raise ValueError(f"the password needs at least {MIN_PASSWORD} characters")
        user = User(str(uuid.uuid4()), email, role)
        with self.engine.begin() as connection:
            if connection.execute(sa.select(users.c.id).where(users.c.email == email)).first():
                raise ValueError(f"an account for {email} exists")
            connection.execute(users.insert().values(
                id=user.id, email=email, role=role, password_hash=HASHER.hash(password),
                created_at=dt.datetime.now(dt.UTC)))
        return user

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
