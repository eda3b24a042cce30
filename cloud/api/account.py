"""Accounts their owners run: sign-up, invitations, forgotten and changed passwords, the profile.

The unauthenticated routes answer the same whether or not an account matched (see
`cloud.services.accounts`); codes and links arrive by e-mail.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated, Literal

from fastapi import APIRouter, Request, status
from pydantic import BaseModel, ConfigDict, Field

from ..services import accounts, preferences
from ..services.accounts import AccountContext
from .deps import CurrentPrincipal, InPerson, PoolDep, client_address, jwt_secret
from .scoped_route import ScopedRoute
from .types import Email, Language, Patch, Phone, text

router = APIRouter(tags=["accounts"], route_class=ScopedRoute)

AccountNo = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9/_ -]+$")]
BoardCode = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Code = Annotated[str, Field(pattern=r"^[0-9]{6}$")]
LinkToken = Annotated[str, Field(min_length=20, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]
NewPassword = Annotated[str, Field(min_length=1, max_length=256)]


def account_context(request: Request) -> AccountContext:
    return AccountContext(jwt_secret(request), request.app.state.settings)


class Accepted(BaseModel):
    detail: str


class SignupRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account_no: AccountNo
    email: Email
    board_code: BoardCode | None = None


class SignupComplete(SignupRequest):
    code: Code
    password: NewPassword


class NewUser(BaseModel):
    id: int
    email: str
    role: str
    name: str | None


class ForgotPassword(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: Email


class ResetPassword(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: LinkToken
    password: NewPassword


class AcceptInvitation(ResetPassword):
    name: text(200, min_length=1) | None = None  # type: ignore[valid-type]


class ChangePassword(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: Annotated[str, Field(min_length=1, max_length=256)]
    new_password: NewPassword


class ConfirmEmail(BaseModel):
    model_config = ConfigDict(extra="forbid")
    token: LinkToken


class Profile(BaseModel):
    id: int
    email: str
    name: str | None
    phone: str | None
    language: str
    role: str
    state: str | None
    board: str | None
    time_zone: str | None
    consumer_account: str | None
    consumer_name: str | None
    pending_email: str | None
    created_at: datetime
    password_set_at: datetime | None


class ProfileUpdate(Patch):
    NULLABLE = frozenset({"phone"})
    name: text(200, min_length=1) | None = None  # type: ignore[valid-type]
    email: Email | None = None
    phone: Phone | None = None
    language: Language | None = None


@router.post("/api/v1/auth/signup", response_model=Accepted, status_code=status.HTTP_202_ACCEPTED)
async def signup(body: SignupRequest, request: Request, pool: PoolDep) -> Accepted:
    """Ask for a sign-up code: sent to `email` if it and `account_no` are on one consumer's
    record. The answer is the same either way."""
    detail = await accounts.request_signup(
        pool,
        account_context(request),
        account_no=body.account_no,
        email=body.email,
        board_code=body.board_code,
        client_ip=client_address(request),
    )
    return Accepted(detail=detail)


@router.post(
    "/api/v1/auth/signup/complete", response_model=NewUser, status_code=status.HTTP_201_CREATED
)
async def signup_complete(body: SignupComplete, request: Request, pool: PoolDep) -> dict:
    """Create the consumer's account with the e-mailed code and a password of their choice."""
    return await accounts.complete_signup(
        pool,
        account_context(request),
        account_no=body.account_no,
        email=body.email,
        board_code=body.board_code,
        code=body.code,
        password=body.password,
        client_ip=client_address(request),
    )


@router.post(
    "/api/v1/auth/password/forgot", response_model=Accepted, status_code=status.HTTP_202_ACCEPTED
)
async def forgot_password(body: ForgotPassword, request: Request, pool: PoolDep) -> Accepted:
    """E-mail a link to choose a new password, if an account uses this address."""
    detail = await accounts.request_password_reset(
        pool, account_context(request), email=body.email, client_ip=client_address(request)
    )
    return Accepted(detail=detail)


@router.post("/api/v1/auth/password/reset", status_code=status.HTTP_204_NO_CONTENT)
async def reset_password(body: ResetPassword, request: Request, pool: PoolDep) -> None:
    """Set a new password with the e-mailed link's token; every session of the user ends."""
    await accounts.reset_password(
        pool, account_context(request), token=body.token, password=body.password
    )


@router.post("/api/v1/auth/invitation/accept", response_model=NewUser)
async def accept_invitation(body: AcceptInvitation, request: Request, pool: PoolDep) -> dict:
    """Choose the password of an invited account with the invitation link's token."""
    return await accounts.accept_invitation(
        pool, account_context(request), token=body.token, password=body.password, name=body.name
    )


@router.get("/api/v1/users/me", response_model=Profile)
async def get_profile(principal: CurrentPrincipal, pool: PoolDep) -> dict:
    async with pool.connection() as conn:
        return await accounts.profile(conn, principal)


@router.patch("/api/v1/users/me", response_model=Profile)
async def update_profile(
    body: ProfileUpdate, request: Request, principal: InPerson, pool: PoolDep
) -> dict:
    """Change your name, phone or language; a new e-mail address takes effect once you open the
    link sent to it (`pending_email` until then)."""
    return await accounts.update_profile(
        pool, account_context(request), principal, body.model_dump(exclude_unset=True)
    )


@router.post("/api/v1/users/me/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(
    body: ChangePassword, request: Request, principal: InPerson, pool: PoolDep
) -> None:
    """Change your password (the current one is needed); every session ends, this one too."""
    await accounts.change_password(
        pool,
        account_context(request),
        principal,
        current=body.current_password,
        new=body.new_password,
        client_ip=client_address(request),
    )


@router.post("/api/v1/users/me/email/confirm", response_model=NewUser)
async def confirm_email(body: ConfirmEmail, request: Request, pool: PoolDep) -> dict:
    """Make the new address yours with the token of the link sent to it."""
    return await accounts.confirm_email(pool, account_context(request), token=body.token)


ConsentKind = Literal[preferences.CONSENT_KINDS]  # type: ignore[valid-type]


class ConsentChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: ConsentKind
    granted: bool


class ConsentState(BaseModel):
    granted: bool
    at: datetime | None


class ConsentEntry(BaseModel):
    kind: str
    granted: bool
    at: datetime


class Consents(BaseModel):
    current: dict[str, ConsentState]
    history: list[ConsentEntry]


class Preferences(BaseModel):
    model_config = ConfigDict(extra="forbid")
    channels: Annotated[
        list[Literal[preferences.CHANNELS]],  # type: ignore[valid-type]
        Field(min_length=1, max_length=3),
    ] = ["in_app", "email"]
    alert_min_severity: Literal[preferences.SEVERITIES] = "medium"  # type: ignore[valid-type]
    opted_out: Annotated[
        list[Literal[preferences.OPT_OUTS]],  # type: ignore[valid-type]
        Field(max_length=4),
    ] = []
    quiet_from: time | None = None
    quiet_until: time | None = None
    zone: Annotated[
        str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_+-]+(/[A-Za-z0-9_+-]+)*$")
    ] = "Asia/Kolkata"


class StoredPreferences(Preferences):
    model_config = ConfigDict(extra="ignore")
    updated_at: datetime | None


@router.get("/api/v1/users/me/consents", response_model=Consents)
async def get_consents(principal: CurrentPrincipal, pool: PoolDep) -> dict:
    """What you consented to now, and every grant and revocation since."""
    async with pool.connection() as conn:
        return await preferences.consents(conn, principal)


@router.post("/api/v1/users/me/consents", response_model=Consents)
async def change_consent(body: ConsentChange, principal: InPerson, pool: PoolDep) -> dict:
    """Grant or revoke one kind of consent (kept in the history with its time)."""
    async with pool.connection() as conn:
        return await preferences.set_consent(conn, principal, kind=body.kind, granted=body.granted)


@router.get("/api/v1/users/me/preferences", response_model=StoredPreferences)
async def get_preferences(principal: CurrentPrincipal, pool: PoolDep) -> dict:
    """How you want to hear of things (the defaults until you choose)."""
    async with pool.connection() as conn:
        return await preferences.preferences(conn, principal)


@router.put("/api/v1/users/me/preferences", response_model=StoredPreferences)
async def put_preferences(body: Preferences, principal: InPerson, pool: PoolDep) -> dict:
    """Choose channels, the lowest alert severity to hear of, what to opt out of, and quiet
    hours (local times in `zone`; both or neither)."""
    chosen = body.model_dump()
    chosen["channels"] = sorted(set(chosen["channels"]))
    chosen["opted_out"] = sorted(set(chosen["opted_out"]))
    async with pool.connection() as conn:
        return await preferences.set_preferences(conn, principal, chosen)
