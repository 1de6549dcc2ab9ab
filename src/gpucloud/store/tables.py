"""The schema. One table a concept; constraints guard what code alone cannot.

The rule that matters most lives here: `gpu_claims.gpu_id` and `cpu_claims.cpu_id` are
unique, so no GPU and no CPU thread can ever be held by two instances, whatever runs above.
Hosts carry a `generation` that every claim bumps (compare-and-swap), which serialises
claims on one host without locking the others.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from gpucloud.clock import utcnow

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

HOST_STATUSES = ("active", "draining", "maintenance", "down")
GPU_STATUSES = ("available", "reserved", "faulty")
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
ADMIN_ROLES = ("admin", "support")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _enum_check(column: str, values: tuple[str, ...]) -> CheckConstraint:
    listed = ", ".join(f"'{v}'" for v in values)
    return CheckConstraint(f"{column} IN ({listed})", name=f"{column}_valid")


# --- catalog mirror -------------------------------------------------------------------


class RegionRow(Base):
    """Mirror of the shipped catalog, kept so hosts and instances reference real regions."""

    __tablename__ = "regions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    label: Mapped[str] = mapped_column(String(64))
    country: Mapped[str] = mapped_column(String(8))


class GpuModelRow(Base):
    __tablename__ = "gpu_models"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    vendor_id: Mapped[int] = mapped_column(Integer)
    device_ids: Mapped[list] = mapped_column(JSON)


class InstanceTypeRow(Base):
    __tablename__ = "instance_types"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    label: Mapped[str] = mapped_column(String(128))
    type_class: Mapped[str] = mapped_column(String(16))
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mib: Mapped[int] = mapped_column(Integer)
    disk_mib: Mapped[int] = mapped_column(Integer)
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    gpu_model_id: Mapped[str | None] = mapped_column(ForeignKey("gpu_models.id"))
    price_hourly: Mapped[float] = mapped_column(Float)
    price_monthly: Mapped[float] = mapped_column(Float)


# --- fleet ----------------------------------------------------------------------------


class Host(Base):
    __tablename__ = "hosts"
    __table_args__ = (
        _enum_check("status", HOST_STATUSES),
        CheckConstraint("driver IN ('libvirt', 'sim')", name="driver_valid"),
        CheckConstraint("(driver = 'libvirt') = (uri IS NOT NULL)", name="uri_iff_libvirt"),
        Index("ix_hosts_region_generation", "region_id", "generation"),  # what changed in a region since G
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    region_id: Mapped[str] = mapped_column(ForeignKey("regions.id"), index=True)
    driver: Mapped[str] = mapped_column(String(16))
    uri: Mapped[str | None] = mapped_column(String(512), unique=True)
    profile: Mapped[str | None] = mapped_column(String(128))  # sim hosts: the profile they were built from
    cpu_model: Mapped[str] = mapped_column(String(128), default="")
    status: Mapped[str] = mapped_column(String(16), default="active")
    status_reason: Mapped[str] = mapped_column(Text, default="")
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    missed_checks: Mapped[int] = mapped_column(Integer, default=0)
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    settings: Mapped[dict] = mapped_column(JSON, default=dict)  # per-host placement overrides
    cpu_layout_key: Mapped[str | None] = mapped_column(String(64))  # store.fleet.cpu_layout_key of its cpus rows

    numa_nodes: Mapped[list[NumaNodeRow]] = relationship(
        back_populates="host", order_by="NumaNodeRow.node_index", cascade="all, delete-orphan"
    )
    gpus: Mapped[list[GpuRow]] = relationship(back_populates="host", order_by="GpuRow.pci_address")


class NumaNodeRow(Base):
    __tablename__ = "numa_nodes"
    __table_args__ = (UniqueConstraint("host_id", "node_index"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    node_index: Mapped[int] = mapped_column(Integer)
    memory_mib: Mapped[int] = mapped_column(BigInteger)
    hugepages_1g: Mapped[int] = mapped_column(Integer, default=0)
    reserved_memory_mib: Mapped[int] = mapped_column(BigInteger, default=0)  # kept for the host OS
    distances: Mapped[list] = mapped_column(JSON, default=list)

    host: Mapped[Host] = relationship(back_populates="numa_nodes")
    cpus: Mapped[list[CpuRow]] = relationship(order_by="CpuRow.cpu_index", cascade="all, delete-orphan")


class CpuRow(Base):
    """A logical CPU. `reserved` ones stay with the host and emulator threads."""

    __tablename__ = "cpus"
    __table_args__ = (UniqueConstraint("host_id", "cpu_index"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    numa_node_id: Mapped[int] = mapped_column(ForeignKey("numa_nodes.id", ondelete="CASCADE"))
    cpu_index: Mapped[int] = mapped_column(Integer)
    socket_id: Mapped[int] = mapped_column(Integer)
    core_id: Mapped[int] = mapped_column(Integer)
    siblings: Mapped[list] = mapped_column(JSON)
    reserved: Mapped[bool] = mapped_column(Boolean, default=False)


class GpuRow(Base):
    __tablename__ = "gpus"
    __table_args__ = (UniqueConstraint("host_id", "pci_address"), _enum_check("status", GPU_STATUSES))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    pci_address: Mapped[str] = mapped_column(String(16))
    vendor_id: Mapped[int] = mapped_column(Integer)
    device_id: Mapped[int] = mapped_column(Integer)
    class_code: Mapped[int] = mapped_column(Integer)
    product: Mapped[str] = mapped_column(String(128), default="")
    gpu_model_id: Mapped[str | None] = mapped_column(ForeignKey("gpu_models.id"))
    numa_node: Mapped[int] = mapped_column(Integer)  # -1 when the firmware does not say
    iommu_group: Mapped[int] = mapped_column(Integer)
    # [{address, class_code, vendor_id, device_id, description}]
    companions: Mapped[list] = mapped_column(JSON, default=list)
    status: Mapped[str] = mapped_column(String(16), default="available")
    status_reason: Mapped[str] = mapped_column(Text, default="")

    host: Mapped[Host] = relationship(back_populates="gpus")


# --- customers ------------------------------------------------------------------------


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    company: Mapped[str] = mapped_column(String(128), default="")
    is_staff: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    email: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    password_hash: Mapped[str | None] = mapped_column(String(255))  # argon2; set by a console sign-up


TOKEN_KINDS = ("personal", "console")


class SshKey(Base):
    """A public key a user keeps in their profile (`/profile/sshkeys`); `authorized_users` on
    create puts a user's keys into the new guest."""

    __tablename__ = "ssh_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(64), default="")
    ssh_key: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Tag(Base):
    """A tag the account created (`POST /tags`); tags set on instances live on the instance row,
    and the account's tags are both together."""

    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("account_id", "label"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    label: Mapped[str] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ApiToken(Base):
    """A personal access token, or a console session's short-lived access token (`kind`
    console: listed nowhere, its expiry slides while it is used). Only a SHA-256 of the
    secret is kept."""

    __tablename__ = "api_tokens"
    __table_args__ = (_enum_check("kind", TOKEN_KINDS),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    token_prefix: Mapped[str] = mapped_column(String(16))  # shown in listings, like Linode's "token" field
    scopes: Mapped[str] = mapped_column(String(512), default="*")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    kind: Mapped[str] = mapped_column(String(16), default="personal", server_default="personal")


class AdminUser(Base):
    __tablename__ = "admin_users"
    __table_args__ = (_enum_check("role", ADMIN_ROLES),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="admin")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AdminSession(Base):
    """A logged-in admin session; the cookie names it (by the sha256 of its secret). Logging
    out ends it here, so a copied cookie stops working at once."""

    __tablename__ = "admin_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)


class LoginThrottle(Base):
    """Failed logins per username and per address (`user:NAME`, `address:IP`), and until when
    the next try is refused: shared by every API process."""

    __tablename__ = "login_throttles"
    key: Mapped[str] = mapped_column(String(320), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)


# --- instances and what they hold -----------------------------------------------------


class Instance(Base):
    __tablename__ = "instances"
    # ids are never reused (SQLite would otherwise hand out a deleted maximum again): they
    # name domains on hosts and appear in customers' event history
    __table_args__ = (UniqueConstraint("account_id", "label"), Index("ix_instances_host_id", "host_id"),
                      Index("uq_instances_mac", "mac", unique=True),
                      Index("ix_instances_region_id_id", "region_id", "id"),  # the region's newest: IPv4 search
                      {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    label: Mapped[str] = mapped_column(String(64))
    group: Mapped[str] = mapped_column("group_name", String(64), default="")
    region_id: Mapped[str] = mapped_column(ForeignKey("regions.id"))
    type_id: Mapped[str] = mapped_column(ForeignKey("instance_types.id"))
    image: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(24), default="provisioning")
    status_reason: Mapped[str] = mapped_column(Text, default="")
    host_id: Mapped[int | None] = mapped_column(ForeignKey("hosts.id"))
    booted: Mapped[bool] = mapped_column(Boolean, default=True)  # the customer's wish: running or offline
    # the guest's addresses, from the region's pools (ip_pools); unique, freed with the row (after the
    # host confirmed the domain gone). ipv6 is SLAAC (EUI-64) from `mac` in the region's IPv6 pool
    ipv4: Mapped[str | None] = mapped_column(String(45), unique=True)
    ipv6: Mapped[str | None] = mapped_column(String(64))
    mac: Mapped[str | None] = mapped_column(String(17))  # the interface's (unique); NULL: derived (older rows)
    tags: Mapped[list] = mapped_column(JSON, default=list)
    alerts: Mapped[dict] = mapped_column(JSON, default=dict)
    watchdog_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    root_pass_hash: Mapped[str | None] = mapped_column(String(255))
    authorized_keys: Mapped[list] = mapped_column(JSON, default=list)
    user_data: Mapped[str | None] = mapped_column(Text)  # metadata.user_data as sent (base64), for the seed
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


class GpuClaim(Base):
    __tablename__ = "gpu_claims"
    gpu_id: Mapped[int] = mapped_column(ForeignKey("gpus.id"), primary_key=True)  # one holder per GPU, ever
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), index=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"), index=True)
    claimed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class CpuClaim(Base):
    """A dedicated (pinned) CPU thread. `guest_vcpu` is the vCPU number it backs."""

    __tablename__ = "cpu_claims"
    __table_args__ = (UniqueConstraint("instance_id", "guest_vcpu"),)
    cpu_id: Mapped[int] = mapped_column(ForeignKey("cpus.id"), primary_key=True)  # one holder per thread, ever
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), index=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"), index=True)
    guest_vcpu: Mapped[int] = mapped_column(Integer)


class MemoryClaim(Base):
    """Memory an instance takes from one NUMA node; shared vCPUs are counted here too."""

    __tablename__ = "memory_claims"
    __table_args__ = (
        CheckConstraint("memory_mib > 0", name="memory_positive"),
        CheckConstraint("hugepages_1g >= 0 AND shared_vcpus >= 0", name="counts_non_negative"),
    )
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True)
    numa_node_id: Mapped[int] = mapped_column(ForeignKey("numa_nodes.id"), primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"), index=True)
    guest_cell: Mapped[int] = mapped_column(Integer, default=0)
    memory_mib: Mapped[int] = mapped_column(BigInteger)
    hugepages_1g: Mapped[int] = mapped_column(Integer, default=0)  # 1 GiB pages, when backed by them
    shared_vcpus: Mapped[int] = mapped_column(Integer, default=0)  # unpinned vCPUs of standard plans


# --- work and its story ---------------------------------------------------------------


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        _enum_check("state", JOB_STATES),
        Index("ix_jobs_claimable", "state", "run_after"),
        Index("ix_jobs_instance_id", "instance_id", "id"),
        {"sqlite_autoincrement": True},
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    instance_id: Mapped[int | None] = mapped_column(Integer)  # no FK: jobs outlive deleted instances
    host_id: Mapped[int | None] = mapped_column(ForeignKey("hosts.id", ondelete="SET NULL"))
    event_id: Mapped[int | None] = mapped_column(Integer)
    payload: Mapped[dict] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=5)
    run_after: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)


class JobAttempt(Base):
    __tablename__ = "job_attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    worker: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)
    outcome: Mapped[str] = mapped_column(String(16), default="running")  # running, succeeded, failed, lost
    error: Mapped[str] = mapped_column(Text, default="")


EVENT_OPEN_STATUSES = ("scheduled", "started")  # the statuses a job may still move an event out of


class Event(Base):
    """A customer-visible event, shaped like Linode's. `account_id` NULL means operator-only."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_account_created", "account_id", "id"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(48))
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    percent_complete: Mapped[int | None] = mapped_column(Integer, default=0)
    entity_type: Mapped[str] = mapped_column(String(32), default="linode")
    entity_id: Mapped[int | None] = mapped_column(Integer)
    entity_label: Mapped[str] = mapped_column(String(128), default="")
    secondary_entity: Mapped[dict | None] = mapped_column(JSON)
    username: Mapped[str | None] = mapped_column(String(64))
    message: Mapped[str] = mapped_column(Text, default="")  # why it happened, or why it failed
    step_message: Mapped[str] = mapped_column(Text, default="", server_default="")  # the step its job is at
    seen: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)

    @property
    def shown_message(self) -> str:
        """What the event says to its readers: its own message (a reason given when it was
        created, a failure), else, while it is open, the step its job is at. A step never hides
        a reason, and a finished event does not claim to be "Booting" still."""
        return self.message or (self.step_message if self.status in EVENT_OPEN_STATUSES else "")


# --- feature flags and audit ----------------------------------------------------------


class FeatureFlag(Base):
    __tablename__ = "feature_flags"
    __table_args__ = (
        CheckConstraint("state IN ('off', 'staff', 'percent', 'on')", name="state_valid"),
        CheckConstraint("percent BETWEEN 0 AND 100", name="percent_range"),
    )
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), default="off")
    percent: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class FlagOverride(Base):
    __tablename__ = "flag_overrides"
    flag_key: Mapped[str] = mapped_column(ForeignKey("feature_flags.key", ondelete="CASCADE"), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    allow: Mapped[bool] = mapped_column(Boolean)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Counter(Base):
    """Named monotonically increasing numbers (e.g. `flags`: bumped on every flag change)."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(128))
    before: Mapped[dict | None] = mapped_column(JSON)
    after: Mapped[dict | None] = mapped_column(JSON)
    why: Mapped[str] = mapped_column(Text, default="")


class CapacitySample(Base):
    """A periodic snapshot of inventory per region and GPU model, for charts over time."""

    __tablename__ = "capacity_samples"
    __table_args__ = (Index("ix_capacity_samples_at", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    region_id: Mapped[str] = mapped_column(String(32))
    gpu_model_id: Mapped[str] = mapped_column(String(32))
    total: Mapped[int] = mapped_column(Integer)
    claimed: Mapped[int] = mapped_column(Integer)
    free: Mapped[int] = mapped_column(Integer)
    unavailable: Mapped[int] = mapped_column(Integer)


# --- billing --------------------------------------------------------------------------
# Money is stored in whole cents (integers): exact on both databases; `domain.billing` works
# in Decimal dollars and converts at the edge.

TRIAL_STATUSES = ("pending", "active", "declined", "ended")


class UsageInterval(Base):
    """An instance on one plan from `started_at` until `ended_at` (NULL: still so). Written at
    the three lifecycle facts (created, plan changed, deleted) in their own transactions, so
    every charge can be recomputed from these rows. No FK to instances: usage outlives them."""

    __tablename__ = "usage_intervals"
    __table_args__ = (Index("ix_usage_intervals_account", "account_id", "started_at"),
                      Index("ix_usage_intervals_instance", "instance_id", "ended_at"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    instance_id: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(64))
    region_id: Mapped[str] = mapped_column(String(32))
    type_id: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(DateTime)
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)


class Invoice(Base):
    """One closed calendar month of one account. (account, period) is unique: a month is
    invoiced exactly once, whoever closes it and however often."""

    __tablename__ = "invoices"
    __table_args__ = (UniqueConstraint("account_id", "period"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    period: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    label: Mapped[str] = mapped_column(String(64))
    date: Mapped[datetime] = mapped_column(DateTime)
    subtotal_cents: Mapped[int] = mapped_column(BigInteger)
    tax_cents: Mapped[int] = mapped_column(BigInteger)
    total_cents: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class InvoiceItem(Base):
    __tablename__ = "invoice_items"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))  # hourly, promotion, misc
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    quantity: Mapped[int | None] = mapped_column(Integer)
    unit_price: Mapped[str | None] = mapped_column(String(16))  # exact decimal text, e.g. "0.0075"
    from_at: Mapped[datetime | None] = mapped_column(DateTime)
    to_at: Mapped[datetime | None] = mapped_column(DateTime)
    region: Mapped[str | None] = mapped_column(String(32))
    tax_cents: Mapped[int] = mapped_column(BigInteger)
    total_cents: Mapped[int] = mapped_column(BigInteger)


class Payment(Base):
    """A payment an operator recorded (no card processing in this product)."""

    __tablename__ = "payments"
    __table_args__ = (CheckConstraint("usd_cents > 0", name="usd_positive"), {"sqlite_autoincrement": True})
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    date: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    usd_cents: Mapped[int] = mapped_column(BigInteger)
    note: Mapped[str] = mapped_column(Text, default="")
    recorded_by: Mapped[str] = mapped_column(String(128), default="")


class PromoCode(Base):
    """A code operators hand out: `credit` for `duration_days` after redemption, on the plans
    `covers` names ("all", "gpu", or plan ids), at most `max_redemptions` accounts."""

    __tablename__ = "promo_codes"
    __table_args__ = (CheckConstraint("redemptions <= max_redemptions", name="redemptions_within_max"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    credit_cents: Mapped[int] = mapped_column(BigInteger)
    duration_days: Mapped[int] = mapped_column(Integer)
    covers: Mapped[list] = mapped_column(JSON, default=list)
    max_redemptions: Mapped[int] = mapped_column(Integer)
    redemptions: Mapped[int] = mapped_column(Integer, default=0)
    redeem_by: Mapped[datetime | None] = mapped_column(DateTime)
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AccountPromotion(Base):
    """Credit an account holds (a redeemed code, or a GPU trial's): spent on covered usage
    between `starts_at` and `expires_at`; `used_cents` counts what closed invoices took."""

    __tablename__ = "account_promotions"
    __table_args__ = (UniqueConstraint("account_id", "promo_code_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    promo_code_id: Mapped[int | None] = mapped_column(ForeignKey("promo_codes.id", ondelete="SET NULL"))
    summary: Mapped[str] = mapped_column(String(128))
    credit_cents: Mapped[int] = mapped_column(BigInteger)
    used_cents: Mapped[int] = mapped_column(BigInteger, default=0)
    covers: Mapped[list] = mapped_column(JSON, default=list)
    starts_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class GpuTrial(Base):
    """A customer's request for the one-week GPU trial, and what became of it."""

    __tablename__ = "gpu_trials"
    __table_args__ = (_enum_check("status", TRIAL_STATUSES), Index("ix_gpu_trials_account", "account_id", "id"))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str] = mapped_column(Text, default="")  # the customer's words
    requested_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime)
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decision_reason: Mapped[str | None] = mapped_column(Text)
    starts_at: Mapped[datetime | None] = mapped_column(DateTime)
    ends_at: Mapped[datetime | None] = mapped_column(DateTime)
    promotion_id: Mapped[int | None] = mapped_column(ForeignKey("account_promotions.id", ondelete="SET NULL"))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime)  # when the end-of-trial sweep ran
    disks_until: Mapped[datetime | None] = mapped_column(DateTime)  # stopped instances kept until then


# --- guest networks and usage ---------------------------------------------------------


IP_FAMILIES = ("ipv4", "ipv6")


class IpPool(Base):
    """Addresses a region's guests may be given: `first`..`last` of `network`, on the hosts'
    bridge, routed by `gateway`. IPv4 addresses are handed out one by one (the next free);
    an IPv6 pool is a /64 from which each guest takes its SLAAC address."""

    __tablename__ = "ip_pools"
    __table_args__ = (UniqueConstraint("region_id", "network"), _enum_check("family", IP_FAMILIES))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    region_id: Mapped[str] = mapped_column(ForeignKey("regions.id"), index=True)
    family: Mapped[str] = mapped_column(String(8))
    network: Mapped[str] = mapped_column(String(64))  # CIDR: its prefix is the guests'
    gateway: Mapped[str] = mapped_column(String(45))
    first: Mapped[str] = mapped_column(String(45))
    last: Mapped[str] = mapped_column(String(45))
    created_by: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class InstanceSample(Base):
    """A ring of counter readings per instance (slot = sample number modulo the ring's size):
    cumulative since the domain started, as the hypervisor reports them; rates are their
    differences."""

    __tablename__ = "instance_samples"
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True)
    slot: Mapped[int] = mapped_column(Integer, primary_key=True)
    sampled_at: Mapped[datetime] = mapped_column(DateTime)
    vcpus: Mapped[int] = mapped_column(Integer)
    cpu_seconds: Mapped[float] = mapped_column(Float)
    disk_ops: Mapped[int] = mapped_column(BigInteger)
    disk_bytes: Mapped[int] = mapped_column(BigInteger)
    net_rx_bytes: Mapped[int] = mapped_column(BigInteger)
    net_tx_bytes: Mapped[int] = mapped_column(BigInteger)


class InstanceTransfer(Base):
    """Network transfer of an instance in one calendar month (UTC), from its samples."""

    __tablename__ = "instance_transfer"
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)  # YYYY-MM
    rx_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    tx_bytes: Mapped[int] = mapped_column(BigInteger, default=0)


class PasswordLink(Base):
    """A root password an operator hands to a customer through a link that opens once. Only
    the link token's hash and the password sealed with that token are kept; opening the link
    erases the sealed copy."""

    __tablename__ = "password_links"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("instances.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    sealed: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    opened_at: Mapped[datetime | None] = mapped_column(DateTime)
