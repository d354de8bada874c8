"""Roles per resource (reader < editor < manager) and admins, checked at one point for every RPC.

With roles on (``--roles``), each service process checks every call in one place,
:class:`RolesInterceptor`: after the request message is decoded (a rule reads the resource's
id from it) and before the servicer runs. The HTTP gateway and its MLflow REST routes call
the services with the caller's own token, so they are checked here too.

Each service declares a rule for every one of its RPCs (``suggestion_service/access.py``,
``tracking_service/access.py``; tests/unit/test_access_rules.py fails for an RPC without one):

- :class:`Needs`: a role on the resource the request names (a run's or a logged model's
  experiment, a trial's study, a model version's registered model: looked up by the rule);
- :class:`Creates`: any authenticated caller, who becomes the new resource's manager;
- :class:`Lists`: any authenticated caller; the answer holds only what the caller may read
  (the servicer filters the query with :func:`readable_subjects`);
- :data:`ADMIN_ONLY`: server-wide things (webhooks).

Who has which role: an admin (``--admins user:alice,group:ml-admins``) has every role on
everything. Anyone else has the highest of: the role given to ``user:NAME`` (the principal's
name), the roles given to each ``group:NAME`` of the principal's groups, and the
``--default-role`` everyone authenticated has (``none`` unless set). A ``read`` token never
writes, whatever its roles: the read/write check of :mod:`tuning_common.auth` runs first.

A refusal is PERMISSION_DENIED with reason ``ROLE_REQUIRED`` (or ``ADMIN_REQUIRED``) naming the
role needed and the resource, which the caller named itself: nothing is said about resources
it did not name. It is logged and counted (``tuning.access.refusals``).

This module knows no service: it gets the rule table and a :class:`~tuning_common.permissions.PermissionStore`.
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from tuning_common import telemetry
from tuning_common.auth import Principal, current_principal, is_open
from tuning_common.errors import FailedPrecondition, InvalidArgument, PermissionDenied, Unauthenticated
from tuning_common.permissions import PermissionStore, Resource

log = logging.getLogger(__name__)

READER, EDITOR, MANAGER = "reader", "editor", "manager"
ROLES = (READER, EDITOR, MANAGER)  # in order: each may do what the ones before it may
NONE = "none"
_RANK = {role: rank for rank, role in enumerate(ROLES, 1)}

ROLES_ENV = "TUNING_ROLES"
ADMINS_ENV = "TUNING_ADMINS"
DEFAULT_ROLE_ENV = "TUNING_DEFAULT_ROLE"

# Names as the tokens file and OIDC claims carry them: no spaces, commas or control characters.
_NAME = re.compile(r"[^\s,:][^\s,]{0,249}")
_SUBJECT = re.compile(r"(user|group):(.+)")


def at_least(role: str | None, needed: str) -> bool:
    return role is not None and _RANK.get(role, 0) >= _RANK[needed]


def highest(roles: Collection[str | None]) -> str | None:
    known = [role for role in roles if role in _RANK]
    return max(known, key=_RANK.__getitem__) if known else None


def check_role(field: str, role: str) -> str:
    if role not in _RANK:
        raise InvalidArgument(field, f"must be one of {', '.join(ROLES)}, got {role!r}", reason="INVALID_ROLE")
    return role


def check_subject(field: str, subject: str) -> str:
    """``user:NAME`` or ``group:NAME``, else InvalidArgument naming ``field``."""
    match = _SUBJECT.fullmatch(subject)
    if match is None or not _NAME.fullmatch(match.group(2)):
        raise InvalidArgument(field, f"must be 'user:NAME' or 'group:NAME' (a name without spaces or commas), "
                                     f"got {subject!r}", reason="INVALID_SUBJECT")
    return subject


def subjects_of(principal: Principal) -> frozenset[str]:
    return frozenset({f"user:{principal.name}", *(f"group:{group}" for group in principal.groups)})


@dataclass(frozen=True)
class Admins:
    """Who may do everything: ``user:NAME`` and ``group:NAME`` entries."""

    subjects: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, text: str | None, source: str = "admins") -> Admins:
        """Comma-separated subjects (``user:alice,group:ml-admins``); InvalidArgument for a malformed one."""
        entries = [entry.strip() for entry in (text or "").split(",") if entry.strip()]
        return cls(frozenset(check_subject(source, entry) for entry in entries))

    def __contains__(self, principal: Principal) -> bool:
        return not self.subjects.isdisjoint(subjects_of(principal))


# --- rules ------------------------------------------------------------------------------------

# A request's resource, or several (each needs the role), or None when the request names none
# (the whole registry event log): then only admins, or a default role that suffices, may call.
Locate = Callable[[Any], "Resource | Sequence[Resource] | None"]


@dataclass(frozen=True)
class Needs:
    """The caller needs ``role`` on the resource(s) ``locate`` finds in the request (every one of
    them, for a list); ``also``: more roles on other resources the request names (the reader
    role on the run a model version is made from). ``after(request, actor)`` runs once the call
    succeeded (forgetting the roles of a deleted resource, moving those of a renamed one;
    ``actor``: the caller's name, for the audit)."""

    role: str
    locate: Locate
    after: Callable[[Any, str], None] | None = None
    also: tuple[Needs, ...] = ()


@dataclass(frozen=True)
class Creates:
    """Any authenticated caller; ``created(response)`` is the id of the resource and whether the
    call made it: its maker becomes its manager; a create that found it (an idempotent
    CreateStudy) answers it only to a reader of it. ``also``: roles on other resources the
    request names (the reader role on each prior study a new study learns from)."""

    type: str
    created: Callable[[Any], tuple[str, bool]]
    also: tuple[Needs, ...] = ()


@dataclass(frozen=True)
class Lists:
    """Any authenticated caller; the answer holds only the resources of ``type`` it may read."""

    type: str


@dataclass(frozen=True)
class _Named:
    name: str

    def __repr__(self) -> str:
        return self.name


ADMIN_ONLY = _Named("ADMIN_ONLY")

Rule = Needs | Creates | Lists | _Named


# --- the check --------------------------------------------------------------------------------

# The subjects a listing keeps the resources of; None: everything (an admin, a default role of
# reader or more, roles off). Set for the servicer of a Lists RPC, read by readable_subjects().
_READABLE: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar("readable", default=None)


def readable_subjects() -> frozenset[str] | None:
    """For a listing: the subjects whose resources the caller may read, or None for all of them."""
    return _READABLE.get()


@dataclass
class _Creation:
    store: PermissionStore
    type: str
    principal: Principal
    recorded: bool = False


# Set around a Creates call, read by record_creation() in the service's create use case.
_CREATION: contextvars.ContextVar[_Creation | None] = contextvars.ContextVar("creation", default=None)


def record_creation(conn: Any, resource_id: str) -> None:
    """Called by a create use case (CreateStudy, CreateExperiment, CreateRegisteredModel) inside the
    transaction that makes the resource: with roles on, its creator becomes its manager in that
    same transaction. Were it granted after the commit, a twin call by the same principal in
    between (workers that get-or-create one experiment at once) would find the resource and no
    role on it. A no-op with roles off and for calls that did not come through gRPC."""
    creation = _CREATION.get()
    if creation is not None:
        creation.store.reset(conn, Resource(creation.type, resource_id), f"user:{creation.principal.name}",
                             MANAGER, actor=creation.principal.name)
        creation.recorded = True


@dataclass(frozen=True)
class Policy:
    """One service's rules, permissions, admins and default role."""

    rules: Mapping[str, Rule]
    store: PermissionStore
    admins: Admins = Admins()
    default_role: str | None = None

    def role_on(self, principal: Principal, resource: Resource) -> str | None:
        if principal in self.admins:
            return MANAGER
        return highest([self.default_role, *self.store.roles(resource, subjects_of(principal))])

    def require(self, principal: Principal, role: str, resource: Resource) -> None:
        if not at_least(self.role_on(principal, resource), role):
            raise PermissionDenied(f"the {role} role on {resource} is required", reason="ROLE_REQUIRED",
                                   metadata={"role": role, "resource_type": resource.type,
                                             "resource_id": resource.id})

    def check(self, method: str, principal: Principal, request: Any) -> Rule:
        """Raises PermissionDenied unless ``principal`` may call ``method`` with ``request``;
        returns the method's rule. A method without a rule is refused (never allowed by omission)."""
        rule = self.rules.get(method)
        if rule is None:
            raise PermissionDenied(f"{method} has no access rule", reason="NO_ACCESS_RULE")
        if rule is ADMIN_ONLY and principal not in self.admins:
            raise PermissionDenied("only an admin may do this", reason="ADMIN_REQUIRED")
        if isinstance(rule, Needs | Creates):
            for needs in (rule, *rule.also) if isinstance(rule, Needs) else rule.also:
                found = needs.locate(request)
                if found is None:
                    if principal not in self.admins and not at_least(self.default_role, needs.role):
                        raise PermissionDenied("only an admin may do this for every resource at once",
                                               reason="ADMIN_REQUIRED")
                    continue
                for resource in [found] if isinstance(found, Resource) else found:
                    self.require(principal, needs.role, resource)
        return rule

    def readable(self, principal: Principal) -> frozenset[str] | None:
        if principal in self.admins or at_least(self.default_role, READER):
            return None
        return subjects_of(principal)


_refusals = telemetry.meter().create_counter(
    "tuning.access.refusals", unit="{call}", description="calls refused for want of a role")


class RolesInterceptor(grpc.aio.ServerInterceptor):
    """Checks every call against the service's :class:`Policy` once its request is decoded.

    Placed after the error-mapping interceptor, it wraps the servicer's own (synchronous)
    method, so the check runs where the handler runs (on its thread: it reads the database)
    and a refusal is mapped like any other domain error. Runs after authentication
    (:class:`tuning_common.auth.AuthInterceptor`), whose principal it reads.
    """

    def __init__(self, policy: Policy):
        self.policy = policy

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or is_open(method):
            return handler
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=self._unary(method, handler.unary_unary))
        if handler.unary_stream is not None:
            return handler._replace(unary_stream=self._unary(method, handler.unary_stream))
        if handler.stream_unary is not None:
            return handler._replace(stream_unary=self._client_stream(method, handler.stream_unary))
        return handler._replace(stream_stream=self._client_stream(method, handler.stream_stream))

    def _allow(self, method: str, request: Any) -> tuple[Principal, Rule]:
        principal = current_principal()
        if principal is None:  # roles without authentication: a misconfigured server lets nobody in
            raise Unauthenticated("roles need an authenticated caller", reason="TOKEN_MISSING")
        try:
            return principal, self.policy.check(method, principal, request)
        except PermissionDenied as error:
            log.info("refused %s to %s: %s", method, principal.name, error)
            _refusals.add(1, {"rpc.method": method.rpartition("/")[2], "reason": error.reason})
            raise

    def _done(self, principal: Principal, rule: Rule, request: Any, response: Any,
              creation: _Creation | None) -> None:
        """What follows a successful call: the rule's ``after``; for a create that found the
        resource rather than made it, the reader role on it."""
        if isinstance(rule, Creates):
            resource_id, made = rule.created(response)
            if made and not creation.recorded:
                raise AssertionError(f"the create use case of {rule.type} did not call record_creation()")
            if not made:
                self.policy.require(principal, READER, Resource(rule.type, resource_id))
        elif isinstance(rule, Needs) and rule.after is not None:
            rule.after(request, principal.name)

    def _unary(self, method: str, behaviour: Callable) -> Callable:
        def checked(request: Any, context: grpc.ServicerContext) -> Any:
            principal, rule = self._allow(method, request)
            if isinstance(rule, Lists):
                _READABLE.set(self.policy.readable(principal))
            creation = _Creation(self.policy.store, rule.type, principal) if isinstance(rule, Creates) else None
            token = _CREATION.set(creation)
            try:
                response = behaviour(request, context)
            finally:
                _CREATION.reset(token)
            self._done(principal, rule, request, response, creation)
            return response

        return checked

    def _client_stream(self, method: str, behaviour: Callable) -> Callable:
        """The first message names the resource (an upload's header): it is checked before the
        servicer reads any."""

        def checked(request_iterator: Iterator[Any], context: grpc.ServicerContext) -> Any:
            first = next(request_iterator, None)
            if first is None:
                return behaviour(iter(()), context)
            principal, rule = self._allow(method, first)
            response = behaviour(_chain(first, request_iterator), context)
            self._done(principal, rule, first, response, None)
            return response

        return checked


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    yield first
    yield from rest


# --- managing permissions ---------------------------------------------------------------------


class PermissionManager:
    """What the Set/Delete/List...Permission RPCs of a service do (its servicer stays thin).

    ``store`` is None with roles off; ``exists`` maps each resource type of the service to a
    function raising InvalidArgument for a malformed id (naming the request's field) and
    NotFound for a resource that does not exist (only admins get that far for one).
    """

    def __init__(self, store: PermissionStore | None, exists: Mapping[str, Callable[[str], object]]):
        self.store = store
        self.exists = exists

    def _store(self, resource: Resource) -> PermissionStore:
        self.exists[resource.type](resource.id)  # bad input first, as with any RPC
        if self.store is None:
            raise FailedPrecondition("this server runs without roles (see --roles)", reason="ROLES_OFF")
        return self.store

    def set(self, resource: Resource, subject: str, role: str) -> tuple[str, str]:
        check_subject("subject", subject)
        check_role("role", role)
        self._store(resource).set(resource, subject, role, actor=_actor())
        return subject, role

    def delete(self, resource: Resource, subject: str) -> None:
        check_subject("subject", subject)
        self._store(resource).delete(resource, subject, actor=_actor())

    def list(self, resource: Resource) -> list[tuple[str, str]]:
        return self._store(resource).list(resource)


def _actor() -> str:
    principal = current_principal()
    return "" if principal is None else principal.name
