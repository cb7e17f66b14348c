"""The state of one emulated Azure tenant: what exists, and which identity sits on which VM.

Every endpoint of the :class:`~podidentity.testing.azure.AzureEmulator` reads this one
:class:`AzureWorld`, so the endpoints agree with each other the way the real services do: an
identity assigned through ARM is what IMDS on that VM will issue tokens for, the service
principal registered here is what Azure AD authenticates, and the object IDs in the tokens are
the ones Key Vault access rules name.

Tests set the world up with Python methods; the servers change it only through ARM. One
re-entrant lock guards everything, because the servers run on another thread. Records handed
out are snapshots: change the world through its methods, not by editing a record.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import urllib.parse
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal, TypedDict

import attrs

from podidentity.testing._clock import Clock, system_clock
from podidentity.testing._pki import CertificateAuthority, IssuedCertificate
from podidentity.testing.azure._operations import (
    PREEMPTED,
    IdentityOperation,
    OperationInFlight,
)
from podidentity.testing.azure._roles import RoleAssignment, RoleAssignments

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "ARM_AUDIENCES",
    "DEFAULT_RESOURCES",
    "MAX_FEDERATED_CREDENTIALS",
    "WORKLOAD_IDENTITY_AUDIENCE",
    "AzureWorld",
    "ComputeKind",
    "ComputeResource",
    "Departure",
    "FederatedCredential",
    "ManagedIdentity",
    "Placement",
    "Principal",
    "ServicePrincipal",
    "SystemIdentity",
    "resource_key",
]

ComputeKind = Literal["virtualMachines", "virtualMachineScaleSets"]

#: The audiences ARM accepts on a bearer token (both spellings, with and without the slash).
ARM_AUDIENCES = (
    "https://management.azure.com/",
    "https://management.core.windows.net/",
)
#: Resources Azure AD knows out of the box; tokens for anything else fail with AADSTS500011.
DEFAULT_RESOURCES = (
    *ARM_AUDIENCES,
    "https://vault.azure.net",
    "https://graph.microsoft.com",
    "https://storage.azure.com/",
    "https://database.windows.net/",
)
#: The audience of Kubernetes service-account tokens exchanged with Azure AD.
WORKLOAD_IDENTITY_AUDIENCE = "api://AzureADTokenExchange"
#: Azure allows at most 20 federated identity credentials per identity or application.
MAX_FEDERATED_CREDENTIALS = 20


def resource_key(resource: str) -> str:
    """A resource URI compared the way Azure AD does: case-insensitive, trailing slash ignored."""
    return resource.rstrip("/").lower()


def _new_id() -> str:
    return str(uuid.uuid4())


@attrs.frozen
class Principal:
    """Whom a token is issued to: the ``appid``/``azp`` and ``oid`` claims and their kind.

    Attributes:
        client_id: the application (client) ID, ``appid`` in tokens.
        object_id: the service principal's object ID, ``oid`` in tokens (what access rules
            name).
        kind: ``"ManagedIdentity"`` or ``"ServicePrincipal"``.
        display_name: a human name for logs.
        resource_id: the ARM resource ID of a managed identity (``xms_mirid``), else ``None``.
    """

    client_id: str
    object_id: str
    kind: str
    display_name: str
    resource_id: str | None = None


@attrs.frozen
class ManagedIdentity:
    """A user-assigned managed identity (``Microsoft.ManagedIdentity/userAssignedIdentities``)."""

    name: str
    subscription_id: str
    resource_group: str
    tenant_id: str
    client_id: str = attrs.field(factory=_new_id)
    principal_id: str = attrs.field(factory=_new_id)
    location: str = "eastus"

    @property
    def resource_id(self) -> str:
        """The ARM resource ID, the key of ``identity.userAssignedIdentities``."""
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{self.name}"
        )

    @property
    def principal(self) -> Principal:
        """Whom tokens of this identity name."""
        return Principal(
            client_id=self.client_id,
            object_id=self.principal_id,
            kind="ManagedIdentity",
            display_name=self.name,
            resource_id=self.resource_id,
        )


@attrs.frozen(repr=False)
class ServicePrincipal:
    """An application registration with its service principal and credentials.

    ``repr`` names the application only: its secrets and keys never reach a log.
    """

    display_name: str
    client_id: str = attrs.field(factory=_new_id)
    object_id: str = attrs.field(factory=_new_id)
    secrets: tuple[str, ...] = ()
    certificates: tuple[IssuedCertificate, ...] = ()

    def __repr__(self) -> str:
        return (
            f"ServicePrincipal(display_name={self.display_name!r}, client_id={self.client_id!r},"
            f" secrets=<{len(self.secrets)}>, certificates=<{len(self.certificates)}>)"
        )

    @property
    def secret(self) -> str:
        """The first client secret (most tests register one)."""
        if not self.secrets:
            raise LookupError(f"service principal {self.display_name!r} has no client secret")
        return self.secrets[0]

    @property
    def certificate(self) -> IssuedCertificate:
        """The first certificate credential."""
        if not self.certificates:
            raise LookupError(f"service principal {self.display_name!r} has no certificate")
        return self.certificates[0]

    @property
    def principal(self) -> Principal:
        """Whom tokens of this application name."""
        return Principal(
            client_id=self.client_id,
            object_id=self.object_id,
            kind="ServicePrincipal",
            display_name=self.display_name,
        )


@attrs.frozen
class FederatedCredential:
    """Trust in tokens from an external issuer: issuer, subject and audience must all match.

    As in Azure, a credential has exactly one audience and an ``https`` issuer.
    """

    name: str
    issuer: str
    subject: str
    audiences: tuple[str, ...] = (WORKLOAD_IDENTITY_AUDIENCE,)


@attrs.frozen
class SystemIdentity:
    """A VM's or scale set's system-assigned identity."""

    principal_id: str = attrs.field(factory=_new_id)
    client_id: str = attrs.field(factory=_new_id)


@attrs.frozen
class Departure:
    """A user-assigned identity taken off a VM or scale set, remembered for IMDS's sake.

    IMDS keeps serving a removed identity for a propagation window after its removal.

    Attributes:
        identity: the identity removed.
        assigned_at: when it had been assigned (its grant, for IMDS's token cache).
        removed_at: when it was removed (world clock).
        booted: whether the machine had been created with it (IMDS served it at once).
    """

    identity: ManagedIdentity
    assigned_at: float
    removed_at: float
    booted: bool = False


@attrs.define
class ComputeResource:
    """A VM or a scale set and the identities on it (a snapshot when handed out).

    Attributes:
        assigned_at: when (world clock) each user-assigned identity, by lower-cased resource
            ID, was put on the resource; IMDS uses it to emulate propagation delay.
        departed: identities removed from the resource, by lower-cased resource ID, with when;
            IMDS serves them for its propagation window after removal.
        created_at: when (world clock) the resource was created.
        booted_with: the user-assigned identities (lower-cased resource IDs) it was created
            with and still holds: IMDS serves them without a propagation window.
    """

    kind: ComputeKind
    name: str
    subscription_id: str
    resource_group: str
    location: str = "eastus"
    unique_id: str = attrs.field(factory=_new_id)
    capacity: int = 1
    system_identity: SystemIdentity | None = None
    user_assigned: dict[str, ManagedIdentity] = attrs.field(factory=dict)
    assigned_at: dict[str, float] = attrs.field(factory=dict)
    departed: dict[str, Departure] = attrs.field(factory=dict)
    created_at: float = 0.0
    booted_with: set[str] = attrs.field(factory=set)

    @property
    def resource_id(self) -> str:
        """The ARM resource ID."""
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.Compute/{self.kind}/{self.name}"
        )

    @property
    def identity_type(self) -> str:
        """ARM's ``identity.type``: ``None``, ``SystemAssigned``, ``UserAssigned`` or both."""
        kinds = []
        if self.system_identity is not None:
            kinds.append("SystemAssigned")
        if self.user_assigned:
            kinds.append("UserAssigned")
        return ", ".join(kinds) or "None"

    def snapshot(self) -> ComputeResource:
        """A copy that later changes to the world do not touch."""
        return attrs.evolve(
            self,
            user_assigned=dict(self.user_assigned),
            assigned_at=dict(self.assigned_at),
            departed=dict(self.departed),
            booted_with=set(self.booted_with),
        )

    def _add(self, key: str, identity: ManagedIdentity, now: float) -> None:
        if key not in self.user_assigned:
            self.assigned_at[key] = now
        self.user_assigned[key] = identity
        self.departed.pop(key, None)

    def _remove(self, key: str, now: float) -> None:
        identity = self.user_assigned.pop(key, None)
        assigned_at = self.assigned_at.pop(key, None)
        booted = key in self.booted_with
        self.booted_with.discard(key)
        if identity is not None:
            self.departed[key] = Departure(identity, assigned_at or now, now, booted)


class Placement(TypedDict, total=False):
    """Where :meth:`AzureWorld.add_vm` / :meth:`AzureWorld.add_vmss` put a machine.

    Attributes:
        resource_group: default ``podidentity-nodes`` (created when new).
        subscription_id: default the world's default subscription.
        location: default ``eastus``.
        system_assigned: give it a system-assigned identity (default no).
        identities: user-assigned identities it starts with (default none).
    """

    resource_group: str
    subscription_id: str | None
    location: str
    system_assigned: bool
    identities: Iterable[ManagedIdentity]


@attrs.frozen
class _ResourceGroup:
    subscription_id: str
    name: str
    location: str


class AzureWorld:
    """One tenant's subscriptions, identities, applications, VMs and scale sets.

    Args:
        tenant_id: the directory (tenant) ID; generated when omitted.
        ca: issues service principals' certificate credentials.
        clock: the world's time (see :mod:`podidentity.testing._clock`).
    """

    def __init__(
        self,
        *,
        tenant_id: str | None = None,
        ca: CertificateAuthority | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.tenant_id = tenant_id or _new_id()
        self.clock = clock
        self._ca = ca or CertificateAuthority()
        self._lock = threading.RLock()
        self._subscriptions: dict[str, str] = {}
        self._groups: dict[tuple[str, str], _ResourceGroup] = {}
        self._identities: dict[str, ManagedIdentity] = {}
        self._applications: dict[str, ServicePrincipal] = {}
        self._federated: dict[str, list[FederatedCredential]] = {}
        self._compute: dict[tuple[str, str, str, str], ComputeResource] = {}
        self._operations: dict[str, IdentityOperation] = {}
        self._in_flight: dict[tuple[str, str, str, str], IdentityOperation] = {}
        self._resources: set[str] = {resource_key(r) for r in DEFAULT_RESOURCES}
        #: Who may do what at ARM; nobody may do anything until granted (see :meth:`grant_role`).
        self.roles = RoleAssignments()
        self.default_subscription_id = self.add_subscription("podidentity-emulated")

    def __repr__(self) -> str:
        with self._lock:
            return (
                f"AzureWorld(tenant_id={self.tenant_id!r}, identities={len(self._identities)},"
                f" applications={len(self._applications)}, compute={len(self._compute)})"
            )

    @contextlib.contextmanager
    def atomically(self) -> Iterator[None]:
        """Hold the world's lock across several calls, for a read-modify-write.

        ARM's PATCH reads an identity block, merges the request into it and writes it back; the
        servers run on another thread than the test, so without this a change made in between
        would be overwritten. The lock is re-entrant: the world's own methods work inside.
        """
        with self._lock:
            yield

    # -- subscriptions and resource groups ---------------------------------------------------

    def add_subscription(self, display_name: str = "", subscription_id: str | None = None) -> str:
        """Create a subscription and return its ID."""
        sub = subscription_id or _new_id()
        with self._lock:
            self._subscriptions[sub.lower()] = display_name or sub
        return sub

    def has_subscription(self, subscription_id: str) -> bool:
        """Whether the subscription exists (IDs compare case-insensitively, as in ARM)."""
        with self._lock:
            return subscription_id.lower() in self._subscriptions

    def add_resource_group(
        self, name: str, *, subscription_id: str | None = None, location: str = "eastus"
    ) -> str:
        """Create a resource group (idempotent) and return its name."""
        sub = subscription_id or self.default_subscription_id
        with self._lock:
            if not self.has_subscription(sub):
                raise LookupError(f"no subscription {sub!r}; add_subscription() first")
            key = (sub.lower(), name.lower())
            self._groups.setdefault(key, _ResourceGroup(sub, name, location))
        return name

    def has_resource_group(self, subscription_id: str, name: str) -> bool:
        """Whether the resource group exists."""
        with self._lock:
            return (subscription_id.lower(), name.lower()) in self._groups

    # -- identities and applications ---------------------------------------------------------

    def add_managed_identity(
        self,
        name: str,
        *,
        resource_group: str = "podidentity",
        subscription_id: str | None = None,
        client_id: str | None = None,
        principal_id: str | None = None,
        location: str = "eastus",
    ) -> ManagedIdentity:
        """Create a user-assigned managed identity (its resource group too, if new)."""
        sub = subscription_id or self.default_subscription_id
        ids: dict[str, Any] = {}
        if client_id:
            ids["client_id"] = client_id
        if principal_id:
            ids["principal_id"] = principal_id
        identity = ManagedIdentity(
            name=name,
            subscription_id=sub,
            resource_group=resource_group,
            tenant_id=self.tenant_id,
            location=location,
            **ids,
        )
        with self._lock:
            self.add_resource_group(resource_group, subscription_id=sub, location=location)
            key = identity.resource_id.lower()
            if key in self._identities:
                raise ValueError(f"managed identity {identity.resource_id} already exists")
            self._check_client_id_free(identity.client_id)
            self._identities[key] = identity
        return identity

    def delete_managed_identity(self, identity: ManagedIdentity | str) -> None:
        """Delete an identity; VMs keep a dangling reference, as in Azure."""
        key = _identity_key(identity)
        with self._lock:
            found = self._identities.pop(key, None)
            if found is not None:
                self._federated.pop(found.client_id, None)

    def add_service_principal(
        self,
        display_name: str,
        *,
        secret: str | None = None,
        with_secret: bool = True,
        with_certificate: bool = False,
        client_id: str | None = None,
    ) -> ServicePrincipal:
        """Register an application and its service principal.

        Args:
            display_name: the application's name.
            secret: the client secret to register; generated when omitted.
            with_secret: register a client secret at all.
            with_certificate: also register a certificate credential issued by the world's CA.
            client_id: a fixed application ID; generated when omitted.
        """
        secrets_ = (secret or _generate_secret(),) if with_secret or secret else ()
        certs = (self._ca.issue_client(display_name),) if with_certificate else ()
        app = ServicePrincipal(
            display_name=display_name,
            client_id=client_id or _new_id(),
            secrets=secrets_,
            certificates=certs,
        )
        with self._lock:
            self._check_client_id_free(app.client_id)
            self._applications[app.client_id] = app
        return app

    def add_client_secret(self, client_id: str, secret: str | None = None) -> str:
        """Add a client secret to an application and return it."""
        value = secret or _generate_secret()
        with self._lock:
            app = self._application(client_id)
            self._applications[client_id] = attrs.evolve(app, secrets=(*app.secrets, value))
        return value

    def add_client_certificate(self, client_id: str) -> IssuedCertificate:
        """Issue and register a new certificate credential for an application."""
        with self._lock:
            app = self._application(client_id)
            cert = self._ca.issue_client(app.display_name)
            self._applications[client_id] = attrs.evolve(
                app, certificates=(*app.certificates, cert)
            )
        return cert

    def remove_credentials(self, client_id: str) -> None:
        """Revoke every secret and certificate of an application."""
        with self._lock:
            app = self._application(client_id)
            self._applications[client_id] = attrs.evolve(app, secrets=(), certificates=())

    def delete_service_principal(self, client_id: str) -> None:
        """Delete an application and its federated credentials."""
        with self._lock:
            self._applications.pop(client_id, None)
            self._federated.pop(client_id, None)

    def add_federated_credential(
        self,
        owner: ManagedIdentity | ServicePrincipal | str,
        *,
        issuer: str,
        subject: str,
        audiences: Iterable[str] = (WORKLOAD_IDENTITY_AUDIENCE,),
        name: str | None = None,
    ) -> FederatedCredential:
        """Trust tokens from ``issuer`` with ``subject`` for an identity or application.

        ``owner`` is the identity, the application, or a client ID.

        Raises:
            ValueError: the owner already has 20 federated credentials (Azure's limit), the
                issuer is not an ``https`` URL, the subject is empty, or ``audiences`` is not
                exactly one audience (Azure accepts one per credential).
        """
        audiences = tuple(audiences)
        if len(audiences) != 1 or not audiences[0]:
            raise ValueError(
                f"a federated identity credential has exactly one audience, got {list(audiences)};"
                f" add one credential per audience (usually {WORKLOAD_IDENTITY_AUDIENCE!r})"
            )
        if (
            urllib.parse.urlsplit(issuer).scheme != "https"
            or not urllib.parse.urlsplit(issuer).netloc
        ):
            raise ValueError(
                f"a federated identity credential's issuer must be an https URL, got {issuer!r}"
                " (serve the test issuer over TLS, as KubeEmulator(tls=True) does)"
            )
        if not subject:
            raise ValueError("a federated identity credential needs a subject")
        client_id = owner if isinstance(owner, str) else owner.client_id
        with self._lock:
            if self.principal_for_client(client_id) is None:
                raise LookupError(f"no identity or application with client ID {client_id!r}")
            existing = self._federated.setdefault(client_id, [])
            if len(existing) >= MAX_FEDERATED_CREDENTIALS:
                raise ValueError(
                    f"at most {MAX_FEDERATED_CREDENTIALS} federated identity credentials per"
                    " identity"
                )
            credential = FederatedCredential(
                name=name or f"fic-{len(existing) + 1}",
                issuer=issuer,
                subject=subject,
                audiences=audiences,
            )
            existing.append(credential)
        return credential

    def federated_credentials(self, client_id: str) -> list[FederatedCredential]:
        """The federated credentials of an identity or application."""
        with self._lock:
            return list(self._federated.get(client_id, ()))

    def managed_identity(self, key: str) -> ManagedIdentity | None:
        """Find a user-assigned identity by resource ID, client ID or principal ID."""
        with self._lock:
            found = self._identities.get(key.lower())
            if found is not None:
                return found
            for identity in self._identities.values():
                if key.lower() in (identity.client_id.lower(), identity.principal_id.lower()):
                    return identity
        return None

    def service_principal(self, client_id: str) -> ServicePrincipal | None:
        """Find an application by client ID."""
        with self._lock:
            return self._applications.get(client_id)

    def principal_for_client(self, client_id: str) -> Principal | None:
        """Who authenticates with this client ID: an application, or a managed identity."""
        with self._lock:
            app = self._applications.get(client_id)
            if app is not None:
                return app.principal
            for identity in self._identities.values():
                if identity.client_id.lower() == client_id.lower():
                    return identity.principal
        return None

    # -- resources (token audiences) ---------------------------------------------------------

    def add_resource(self, uri: str) -> None:
        """Let Azure AD issue tokens for another resource (application ID URI)."""
        with self._lock:
            self._resources.add(resource_key(uri))

    def knows_resource(self, uri: str) -> bool:
        """Whether Azure AD can issue tokens for ``uri``."""
        with self._lock:
            return resource_key(uri) in self._resources

    # -- role assignments (ARM authorization) ------------------------------------------------

    def grant_role(
        self,
        who: ManagedIdentity | ServicePrincipal | Principal | str,
        scope: ComputeResource | ManagedIdentity | str,
        role: str,
    ) -> RoleAssignment:
        """Assign a built-in role to a principal on a scope, as Azure RBAC does.

        ARM refuses every request of a principal without a role that allows it.

        Args:
            who: the principal, or its object ID.
            scope: a VM, scale set or identity, or an ARM ID (a subscription
                ``/subscriptions/<id>``, a resource group, a resource); it covers what is below.
            role: ``"Virtual Machine Contributor"``, ``"Managed Identity Operator"``,
                ``"Reader"``, ``"Contributor"`` or ``"Owner"``.

        Raises:
            ValueError: an unknown role or a malformed scope.
        """
        if isinstance(who, str):
            object_id = who
        elif isinstance(who, ManagedIdentity):
            object_id = who.principal_id
        else:
            object_id = who.object_id
        scope_id = scope if isinstance(scope, str) else scope.resource_id
        return self.roles.grant(object_id, scope_id, role)

    # -- VMs and scale sets ------------------------------------------------------------------

    def add_vm(self, name: str, **placement: Unpack[Placement]) -> ComputeResource:
        """Create a VM, optionally with a system-assigned identity and user-assigned ones.

        ``placement`` is where it lives and which identities it starts with (:class:`Placement`).
        """
        return self._add_compute("virtualMachines", name, capacity=1, **placement)

    def add_vmss(
        self, name: str, *, capacity: int = 3, **placement: Unpack[Placement]
    ) -> ComputeResource:
        """Create a scale set of ``capacity`` instances (identities live on the scale set)."""
        return self._add_compute("virtualMachineScaleSets", name, capacity=capacity, **placement)

    def _add_compute(
        self,
        kind: ComputeKind,
        name: str,
        *,
        capacity: int,
        resource_group: str = "podidentity-nodes",
        subscription_id: str | None = None,
        location: str = "eastus",
        system_assigned: bool = False,
        identities: Iterable[ManagedIdentity] = (),
    ) -> ComputeResource:
        sub = subscription_id or self.default_subscription_id
        resource = ComputeResource(
            kind=kind,
            name=name,
            subscription_id=sub,
            resource_group=resource_group,
            location=location,
            capacity=capacity,
            system_identity=SystemIdentity() if system_assigned else None,
            created_at=self.clock(),
        )
        key = _compute_key(kind, sub, resource_group, name)
        with self._lock:
            self.add_resource_group(resource_group, subscription_id=sub, location=location)
            if key in self._compute:
                raise ValueError(f"{resource.resource_id} already exists")
            self._compute[key] = resource
            self._assign(resource, identities, resource.created_at)
            resource.booted_with = set(resource.user_assigned)
            return resource.snapshot()

    def compute(
        self,
        kind: ComputeKind,
        name: str,
        *,
        resource_group: str | None = None,
        subscription_id: str | None = None,
    ) -> ComputeResource:
        """Find a VM or scale set by name (and resource group when names repeat)."""
        with self._lock:
            self._settle()
            return self._find(kind, name, resource_group, subscription_id).snapshot()

    def vm(self, name: str, *, resource_group: str | None = None) -> ComputeResource:
        """A snapshot of a VM."""
        return self.compute("virtualMachines", name, resource_group=resource_group)

    def vmss(self, name: str, *, resource_group: str | None = None) -> ComputeResource:
        """A snapshot of a scale set."""
        return self.compute("virtualMachineScaleSets", name, resource_group=resource_group)

    def lookup_compute(
        self, kind: ComputeKind, subscription_id: str, resource_group: str, name: str
    ) -> ComputeResource | None:
        """Exact lookup by ARM path parts (case-insensitive); ``None`` when absent."""
        with self._lock:
            self._settle()
            found = self._compute.get(_compute_key(kind, subscription_id, resource_group, name))
            return found.snapshot() if found else None

    def _find(
        self,
        kind: ComputeKind,
        name: str,
        resource_group: str | None,
        subscription_id: str | None,
    ) -> ComputeResource:
        matches = [
            c
            for c in self._compute.values()
            if c.kind == kind
            and c.name.lower() == name.lower()
            and (resource_group is None or c.resource_group.lower() == resource_group.lower())
            and (subscription_id is None or c.subscription_id.lower() == subscription_id.lower())
        ]
        if not matches:
            raise LookupError(f"no {kind} named {name!r}")
        if len(matches) > 1:
            raise LookupError(f"several {kind} named {name!r}; pass resource_group=")
        return matches[0]

    def assign_identities(
        self,
        compute: ComputeResource,
        identities: Iterable[ManagedIdentity],
        *,
        assigned_at: float | None = None,
    ) -> ComputeResource:
        """Put user-assigned identities on a VM or scale set, as an ARM PATCH would.

        Args:
            compute: the VM or scale set.
            identities: the identities to add.
            assigned_at: when (world clock) the assignment happened; now by default. An earlier
                time stands for an identity assigned long ago, which IMDS already serves (its
                propagation window has passed).
        """
        with self._lock:
            live = self._live(compute)
            self._assign(live, identities, assigned_at)
            return live.snapshot()

    def unassign_identities(
        self, compute: ComputeResource, identities: Iterable[ManagedIdentity | str]
    ) -> ComputeResource:
        """Take user-assigned identities off a VM or scale set."""
        with self._lock:
            live = self._live(compute)
            now = self.clock()
            for identity in identities:
                live._remove(_identity_key(identity), now)
            return live.snapshot()

    def set_system_assigned(self, compute: ComputeResource, enabled: bool) -> ComputeResource:
        """Turn a resource's system-assigned identity on (a new principal) or off."""
        with self._lock:
            live = self._live(compute)
            if enabled and live.system_identity is None:
                live.system_identity = SystemIdentity()
            elif not enabled:
                live.system_identity = None
            return live.snapshot()

    def update_identity(
        self,
        compute: ComputeResource,
        *,
        system_assigned: bool,
        user_assigned: Mapping[str, ManagedIdentity],
        at: float | None = None,
    ) -> ComputeResource:
        """Replace a resource's identity block with an already validated one, at once.

        ``at`` is when the change happened (default now); ARM's operations pass the time they
        completed.
        """
        with self._lock:
            live = self._live(compute)
            self.set_system_assigned(live, system_assigned)
            now = self.clock() if at is None else at
            wanted = {k.lower(): v for k, v in user_assigned.items()}
            for key in list(live.user_assigned):
                if key not in wanted:
                    live._remove(key, now)
            for key, identity in wanted.items():
                live._add(key, identity, now)
            return live.snapshot()

    # -- ARM's long-running identity writes --------------------------------------------------

    def start_identity_operation(
        self,
        compute: ComputeResource,
        *,
        operation_id: str,
        system_assigned: bool,
        user_assigned: Mapping[str, ManagedIdentity],
        duration: float,
        preempt: bool = False,
        fail_with: tuple[str, str] | None = None,
    ) -> IdentityOperation:
        """Accept an identity write that takes effect ``duration`` seconds from now.

        Raises:
            OperationInFlight: another write on the resource has not completed and ``preempt``
                is false. With ``preempt``, that one ends ``Canceled`` with
                ``OperationPreempted`` and this one carries the resource's model on.
        """
        if duration < 0:
            raise ValueError("an operation cannot take negative time")
        with self._lock:
            live = self._live(compute)
            key = _compute_key(live.kind, live.subscription_id, live.resource_group, live.name)
            now = self.clock()
            current = self._in_flight.get(key)
            if current is not None:
                if not preempt:
                    raise OperationInFlight(current.snapshot())
                current.finish("Canceled", now, PREEMPTED)
                del self._in_flight[key]
            operation = IdentityOperation(
                operation_id=operation_id,
                resource_id=live.resource_id,
                location=live.location,
                started=now,
                due=now + duration,
                system_assigned=system_assigned,
                user_assigned={k.lower(): v for k, v in user_assigned.items()},
                fail_with=fail_with,
            )
            self._operations[operation_id] = operation
            self._in_flight[key] = operation
            self._settle()
            return operation.snapshot()

    def identity_operation(self, operation_id: str) -> IdentityOperation | None:
        """An operation by ID (settled first), or ``None``."""
        with self._lock:
            self._settle()
            found = self._operations.get(operation_id)
            return found.snapshot() if found else None

    def pending_identity_operation(self, compute: ComputeResource) -> IdentityOperation | None:
        """The write still in progress on a VM or scale set, if any."""
        with self._lock:
            self._settle()
            key = _compute_key(
                compute.kind, compute.subscription_id, compute.resource_group, compute.name
            )
            found = self._in_flight.get(key)
            return found.snapshot() if found else None

    def settle(self) -> None:
        """Complete every operation that is due (every read of the world does this first)."""
        with self._lock:
            self._settle()

    def _settle(self) -> None:
        if not self._in_flight:
            return
        now = self.clock()
        for key, operation in list(self._in_flight.items()):
            if operation.due > now:
                continue
            del self._in_flight[key]
            live = self._compute.get(key)
            if live is None:
                operation.finish(
                    "Failed",
                    operation.due,
                    ("ResourceNotFound", f"{operation.resource_id} was deleted."),
                )
                continue
            if operation.fail_with is not None:
                operation.finish("Failed", operation.due, operation.fail_with)
                continue
            gone = [
                identity.resource_id
                for k, identity in operation.user_assigned.items()
                if k not in self._identities
            ]
            if gone:
                operation.finish(
                    "Failed",
                    operation.due,
                    ("FailedIdentityOperation", f"Resource '{gone[0]}' was not found."),
                )
                continue
            self.update_identity(
                live,
                system_assigned=operation.system_assigned,
                user_assigned=operation.user_assigned,
                at=operation.due,
            )
            operation.finish("Succeeded", operation.due)

    def scale_vmss(self, vmss: ComputeResource, capacity: int) -> ComputeResource:
        """Change a scale set's instance count; IMDS of removed instances stops answering."""
        if capacity < 0:
            raise ValueError("a scale set's capacity cannot be negative")
        with self._lock:
            live = self._live(vmss)
            if live.kind != "virtualMachineScaleSets":
                raise ValueError(f"{live.resource_id} is not a scale set")
            live.capacity = capacity
            return live.snapshot()

    def all_compute(self) -> list[ComputeResource]:
        """Snapshots of every VM and scale set."""
        with self._lock:
            self._settle()
            return [c.snapshot() for c in self._compute.values()]

    def _live(self, compute: ComputeResource) -> ComputeResource:
        key = _compute_key(
            compute.kind, compute.subscription_id, compute.resource_group, compute.name
        )
        try:
            return self._compute[key]
        except KeyError:
            raise LookupError(f"{compute.resource_id} does not exist") from None

    def _assign(
        self,
        live: ComputeResource,
        identities: Iterable[ManagedIdentity],
        now: float | None = None,
    ) -> None:
        now = self.clock() if now is None else now
        for identity in identities:
            key = identity.resource_id.lower()
            if key not in self._identities:
                raise LookupError(f"managed identity {identity.resource_id} does not exist")
            live._add(key, identity, now)

    def _application(self, client_id: str) -> ServicePrincipal:
        try:
            return self._applications[client_id]
        except KeyError:
            raise LookupError(f"no application with client ID {client_id!r}") from None

    def _check_client_id_free(self, client_id: str) -> None:
        if self.principal_for_client(client_id) is not None:
            raise ValueError(f"client ID {client_id!r} is already taken")


def _compute_key(
    kind: str, subscription_id: str, group: str, name: str
) -> tuple[str, str, str, str]:
    return (kind.lower(), subscription_id.lower(), group.lower(), name.lower())


def _identity_key(identity: ManagedIdentity | str) -> str:
    return (identity if isinstance(identity, str) else identity.resource_id).lower()


def _generate_secret() -> str:
    # Azure client secrets are 40 characters with a '~' or '_' and a 3-character hint prefix.
    return "emu" + "~" + secrets.token_urlsafe(27)[:36]
