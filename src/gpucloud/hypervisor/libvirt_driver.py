"""The hypervisor driver over libvirt: any URI (`qemu:///system`, `qemu+tls://host/system`, `test:///…`).

libvirt calls block, and a host that stops answering would hang a worker forever, so every
operation runs on a helper thread and is abandoned after `timeout_s` (the connection with it).
One connection is kept per driver and reopened when it drops; every operation is idempotent,
so an operation interrupted by a dropped connection is simply run once more on a fresh one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from lxml import etree

from gpucloud.domain.guest import DomainSpec
from gpucloud.domain.topology import HostTopology, TopologyError
from gpucloud.hypervisor.base import (
    CRASHED,
    OTHER,
    PAUSED,
    RUNNING,
    SHUTOFF,
    DomainInfo,
    DomainStats,
    DriverError,
    DriverTimeout,
    HostUnreachable,
    PermanentDriverError,
)
from gpucloud.hypervisor.cloudinit import nocloud_iso
from gpucloud.hypervisor.discovery import DiscoveryError, topology_from_libvirt
from gpucloud.hypervisor.domain_xml import DomainSpecError, Nic, build_domain_xml, volume_names, volumes_for

try:
    import libvirt
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise ImportError(
        "the libvirt driver needs libvirt-python: pip install 'gpucloud[libvirt]' "
        "(it builds against the system libvirt: apt-get install libvirt-dev pkg-config gcc)"
    ) from exc

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_POOL = "gpucloud"
DEFAULT_POOL_PATH = "/var/lib/libvirt/images/gpucloud"
SEED_VOLUME_BYTES = 1024 * 1024  # fixed size, so a redefine can overwrite the seed in place

_STATES = {
    libvirt.VIR_DOMAIN_RUNNING: RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: RUNNING,  # running, waiting on I/O
    libvirt.VIR_DOMAIN_PAUSED: PAUSED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: PAUSED,
    libvirt.VIR_DOMAIN_SHUTOFF: SHUTOFF,
    libvirt.VIR_DOMAIN_CRASHED: CRASHED,
}
_PERMANENT_CODES = {
    libvirt.VIR_ERR_XML_ERROR,
    libvirt.VIR_ERR_XML_DETAIL,
    libvirt.VIR_ERR_CONFIG_UNSUPPORTED,
    libvirt.VIR_ERR_INVALID_ARG,
    libvirt.VIR_ERR_NO_SUPPORT,
    libvirt.VIR_ERR_OPERATION_UNSUPPORTED,
    libvirt.VIR_ERR_NO_DOMAIN,
}
_CONNECTION_CODES = {libvirt.VIR_ERR_INVALID_CONN, libvirt.VIR_ERR_NO_CONNECT}
_TRANSPORT_DOMAINS = {libvirt.VIR_FROM_RPC, libvirt.VIR_FROM_REMOTE}
_TRANSPORT_CODES = {libvirt.VIR_ERR_SYSTEM_ERROR, libvirt.VIR_ERR_INTERNAL_ERROR, libvirt.VIR_ERR_RPC}


def _quiet(_ctx: object, _err: object) -> None:
    """libvirt prints every error to stderr by default; ours reach the caller as exceptions."""


libvirt.registerErrorHandler(_quiet, None)


def base_image_volume(image: str) -> str:
    """The pool volume holding an image's base disk: 'linode/debian12' → 'linode-debian12.qcow2'."""
    return image.replace("/", "-") + ".qcow2"


def stats_from_record(name: str, record: dict[str, Any]) -> DomainStats:
    """`virConnectGetAllDomainStats`'s flat record (`cpu.time` in ns, `vcpu.current`,
    `block.N.rd.reqs`, `net.N.tx.bytes`...) as counters summed over disks and interfaces."""

    def total(prefix: str, count_key: str, *fields: str) -> int:
        return sum(int(record.get(f"{prefix}.{i}.{field}", 0)) for i in range(int(record.get(count_key, 0)))
                   for field in fields)

    return DomainStats(
        name=name,
        vcpus=int(record.get("vcpu.current", 0)),
        cpu_seconds=int(record.get("cpu.time", 0)) / 1e9,
        disk_ops=total("block", "block.count", "rd.reqs", "wr.reqs"),
        disk_bytes=total("block", "block.count", "rd.bytes", "wr.bytes"),
        net_rx_bytes=total("net", "net.count", "rx.bytes"),
        net_tx_bytes=total("net", "net.count", "tx.bytes"),
    )


def _code(exc: libvirt.libvirtError) -> int:
    return exc.get_error_code() or 0


def _connection_lost(exc: BaseException) -> bool:
    if not isinstance(exc, libvirt.libvirtError):
        return False
    if _code(exc) in _CONNECTION_CODES:
        return True
    return exc.get_error_domain() in _TRANSPORT_DOMAINS and _code(exc) in _TRANSPORT_CODES


def _message(exc: libvirt.libvirtError) -> str:
    return " ".join(str(exc.get_error_message() or exc).split())


class _Abandoned(Exception):
    """Raised in a helper thread whose caller gave up waiting; it must not touch shared state."""


class LibvirtDriver:
    """`HypervisorDriver` over one libvirt connection; thread-safe, one operation at a time.

    `pool`/`pool_path`: the `dir` storage pool on the host holding disks, seeds and the base
    images (`linode-debian12.qcow2`); created when missing. `nic`: 'network:NAME',
    'bridge:NAME' or 'user'. `stand_in_gpus` is for CI hosts without an IOMMU (see
    `build_domain_xml`).
    """

    def __init__(
        self,
        uri: str,
        *,
        timeout_s: float = 30.0,
        pool: str = DEFAULT_POOL,
        pool_path: str = DEFAULT_POOL_PATH,
        nic: str = "network:default",
        stand_in_gpus: bool = False,
    ):
        self.uri = uri
        self.timeout_s = timeout_s
        self.pool = pool
        self.pool_path = pool_path
        self.nic = Nic.parse(nic)
        self.stand_in_gpus = stand_in_gpus
        self._op_lock = threading.Lock()  # one operation at a time on this driver
        self._conn_lock = threading.Lock()  # guards _conn and _generation
        self._conn: libvirt.virConnect | None = None
        self._generation = 0  # bumped when a hung operation is abandoned

    # -- plumbing ---------------------------------------------------------------------------

    def _connection(self, generation: int, progress: dict[str, bool]) -> libvirt.virConnect:
        with self._conn_lock:
            conn = self._conn
        if conn is not None:
            try:
                if conn.isAlive():
                    return conn
            except libvirt.libvirtError:
                pass
            self._forget(conn)
        progress["opening"] = True
        try:
            conn = libvirt.open(self.uri)
        except libvirt.libvirtError as exc:
            raise HostUnreachable(f"cannot reach {self.uri}: {_message(exc)}") from None
        finally:
            progress["opening"] = False
        with self._conn_lock:
            abandoned = generation != self._generation
            if not abandoned:
                self._conn = conn
        if abandoned:  # the caller timed out (or closed the driver) while we were connecting
            self._forget(conn)
            raise _Abandoned()
        return conn

    def _forget(self, conn: libvirt.virConnect) -> None:
        with self._conn_lock:
            if self._conn is conn:
                self._conn = None
        with contextlib.suppress(libvirt.libvirtError):  # a dead connection may refuse to close; it is gone either way
            conn.close()

    def _attempts(self, generation: int, progress: dict[str, bool], work: Callable[[libvirt.virConnect], T]) -> T:
        conn = self._connection(generation, progress)
        try:
            return work(conn)
        except libvirt.libvirtError as exc:
            if not _connection_lost(exc):
                raise
            log.info("connection to %s dropped (%s); reconnecting", self.uri, _message(exc))
        self._forget(conn)
        return work(self._connection(generation, progress))

    def _call(self, what: str, work: Callable[[libvirt.virConnect], T]) -> T:
        """Run `work(conn)` bounded by the timeout, reconnecting once if the connection dropped."""
        with self._op_lock:
            with self._conn_lock:
                generation = self._generation
            outcome: dict[str, Any] = {}
            progress = {"opening": False}

            def run() -> None:
                try:
                    outcome["value"] = self._attempts(generation, progress, work)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                    outcome["error"] = exc

            helper = threading.Thread(target=run, name=f"libvirt {what} {self.uri}", daemon=True)
            helper.start()
            helper.join(self.timeout_s)
            if helper.is_alive():
                with self._conn_lock:
                    self._generation += 1
                    self._conn = None  # the hung call keeps its own reference; we never reuse it
                if progress["opening"]:
                    raise HostUnreachable(f"no answer from {self.uri} within {self.timeout_s:g} s")
                raise DriverTimeout(f"{what} on {self.uri} did not finish within {self.timeout_s:g} s")
        error = outcome.get("error")
        if error is None:
            return outcome["value"]
        if isinstance(error, DriverError):
            raise error
        if isinstance(error, libvirt.libvirtError):
            raise self._translate(error, what) from None
        raise error

    def _translate(self, exc: libvirt.libvirtError, what: str) -> DriverError:
        reason = f"{what} on {self.uri}: {_message(exc)}"
        if _connection_lost(exc):
            return HostUnreachable(reason)
        if _code(exc) in _PERMANENT_CODES:
            return PermanentDriverError(reason)
        return DriverError(reason)

    # -- discovery --------------------------------------------------------------------------

    def describe_host(self) -> tuple[str, list[str]]:
        """The host's capabilities XML and the node-device XML of every PCI device."""

        def work(conn: libvirt.virConnect) -> tuple[str, list[str]]:
            documents = []
            for device in conn.listAllDevices(libvirt.VIR_CONNECT_LIST_NODE_DEVICES_CAP_PCI_DEV):
                try:
                    documents.append(device.XMLDesc(0))
                except libvirt.libvirtError as exc:
                    if _code(exc) != libvirt.VIR_ERR_NO_NODE_DEVICE:
                        raise  # a device that vanished while we listed is simply not there
            return conn.getCapabilities(), documents

        return self._call("discover", work)

    def discover(self) -> HostTopology:

        capabilities, devices = self.describe_host()
        try:
            return topology_from_libvirt(capabilities, devices, source=self.uri)
        except (DiscoveryError, TopologyError) as exc:
            raise PermanentDriverError(f"discover on {self.uri}: {exc}") from None

    # -- storage ----------------------------------------------------------------------------

    def _storage_pool(self, conn: libvirt.virConnect) -> libvirt.virStoragePool:
        """Our `dir` pool, defined, built and started when missing."""
        try:
            pool = conn.storagePoolLookupByName(self.pool)
        except libvirt.libvirtError as exc:
            if _code(exc) != libvirt.VIR_ERR_NO_STORAGE_POOL:
                raise
            pool = self._define_pool(conn)
        if not pool.isActive():
            try:
                pool.create(0)
            except libvirt.libvirtError:
                if not pool.isActive():  # another worker may have started it just now
                    raise
        return pool

    def _define_pool(self, conn: libvirt.virConnect) -> libvirt.virStoragePool:
        root = etree.Element("pool", type="dir")
        etree.SubElement(root, "name").text = self.pool
        etree.SubElement(etree.SubElement(root, "target"), "path").text = self.pool_path
        try:
            pool = conn.storagePoolDefineXML(etree.tostring(root, encoding="unicode"), 0)
        except libvirt.libvirtError:
            try:  # another worker may have defined it just now
                return conn.storagePoolLookupByName(self.pool)
            except libvirt.libvirtError:
                pass
            raise
        pool.build(0)
        pool.setAutostart(1)
        log.info("created storage pool %s at %s on %s", self.pool, self.pool_path, self.uri)
        return pool

    @staticmethod
    def _volume(pool: libvirt.virStoragePool, name: str) -> libvirt.virStorageVol | None:
        try:
            return pool.storageVolLookupByName(name)
        except libvirt.libvirtError as exc:
            if _code(exc) != libvirt.VIR_ERR_NO_STORAGE_VOL:
                raise
            return None

    def _base_image(self, pool: libvirt.virStoragePool, image: str) -> libvirt.virStorageVol | None:
        name = base_image_volume(image)
        volume = self._volume(pool, name)
        if volume is None:
            pool.refresh(0)  # an operator may have copied the image into the directory since
            volume = self._volume(pool, name)
        return volume

    def _create_disk(self, pool: libvirt.virStoragePool, name: str, spec: DomainSpec) -> libvirt.virStorageVol:
        base = self._base_image(pool, spec.image) if spec.image else None
        capacity = spec.disk_mib * 1024 * 1024
        root = etree.Element("volume")
        etree.SubElement(root, "name").text = name
        if base is not None:
            capacity = max(capacity, base.info()[1])
            base_format = etree.fromstring(base.XMLDesc(0)).xpath("string(target/format/@type)") or "raw"
            backing = etree.SubElement(root, "backingStore")
            etree.SubElement(backing, "path").text = base.path()
            etree.SubElement(backing, "format", type=base_format)
            log.info("%s: disk %s is a qcow2 overlay on %s", spec.name, name, base.path())
        elif capacity <= 0:
            raise PermanentDriverError(
                f"{spec.name}: no base image {base_image_volume(spec.image or '')} in pool {self.pool} "
                f"on {self.uri}, and no disk size to make an empty disk"
            )
        else:
            log.warning(
                "%s: no base image for %s in pool %s on %s; the disk %s is an empty %d MiB qcow2",
                spec.name, spec.image, self.pool, self.uri, name, spec.disk_mib,
            )  # fmt: skip
        etree.SubElement(root, "capacity", unit="bytes").text = str(capacity)
        etree.SubElement(etree.SubElement(root, "target"), "format", type="qcow2")
        return pool.createXML(etree.tostring(root, encoding="unicode"), 0)

    @staticmethod
    def _write_seed(conn: libvirt.virConnect, volume: libvirt.virStorageVol, data: bytes) -> None:
        stream = conn.newStream(0)
        try:
            volume.upload(stream, 0, len(data), 0)
            for offset in range(0, len(data), 256 * 1024):
                stream.send(data[offset : offset + 256 * 1024])
            stream.finish()
        except libvirt.libvirtError as exc:
            with contextlib.suppress(libvirt.libvirtError):
                stream.abort()
            if _code(exc) == libvirt.VIR_ERR_NO_SUPPORT and conn.getType() == "TEST":
                log.warning("libvirt's test driver stores no volume contents; seed %s left empty", volume.name())
                return
            raise

    def _create_seed(self, pool: libvirt.virStoragePool, name: str, size: int) -> libvirt.virStorageVol:
        root = etree.Element("volume")
        etree.SubElement(root, "name").text = name
        etree.SubElement(root, "capacity", unit="bytes").text = str(size)
        etree.SubElement(etree.SubElement(root, "target"), "format", type="raw")
        return pool.createXML(etree.tostring(root, encoding="unicode"), 0)

    # -- lifecycle --------------------------------------------------------------------------

    def domain_xml(self, spec: DomainSpec) -> str:
        """The XML `define` would send for `spec` (for `gpucloud instance xml`)."""
        try:
            return build_domain_xml(spec, pool=self.pool, nic=self.nic, stand_in_gpus=self.stand_in_gpus)
        except DomainSpecError as exc:
            raise PermanentDriverError(f"{spec.name}: {exc}") from None

    def define(self, spec: DomainSpec) -> None:
        self._define(spec, fresh_disk=False)

    def reimage(self, spec: DomainSpec) -> None:
        self._define(spec, fresh_disk=True)

    def _define(self, spec: DomainSpec, *, fresh_disk: bool) -> None:
        """Define the domain, its disk created from the image when missing (or, `fresh_disk`,
        deleted first: the domain must be off) and its seed written."""
        xml = self.domain_xml(spec)
        volumes = volumes_for(spec, self.pool)
        seed = b""
        if spec.cloud_init is not None:
            seed = nocloud_iso(spec.cloud_init, spec.uuid)
            if len(seed) > SEED_VOLUME_BYTES:
                raise PermanentDriverError(f"{spec.name}: cloud-init seed of {len(seed)} bytes is too large")
            seed += bytes(SEED_VOLUME_BYTES - len(seed))

        def work(conn: libvirt.virConnect) -> None:
            pool = self._storage_pool(conn)
            created: list[libvirt.virStorageVol] = []
            if fresh_disk and volumes.disk:
                domain = self._domain(conn, spec.name)
                if domain is not None and domain.isActive():
                    raise DriverError(f"reimage {spec.name} on {self.uri}: the domain is running")
                old_disk = self._volume(pool, volumes.disk)
                if old_disk is not None:
                    old_disk.delete(0)
            try:
                if volumes.disk and self._volume(pool, volumes.disk) is None:
                    created.append(self._create_disk(pool, volumes.disk, spec))  # an existing disk is kept
                if volumes.seed:
                    volume = self._volume(pool, volumes.seed)
                    if volume is None:
                        volume = self._create_seed(pool, volumes.seed, len(seed))
                        created.append(volume)
                    self._write_seed(conn, volume, seed)
                conn.defineXMLFlags(xml, libvirt.VIR_DOMAIN_DEFINE_VALIDATE)
            except BaseException:
                for volume in created:  # leave nothing behind that no domain refers to
                    try:
                        volume.delete(0)
                    except libvirt.libvirtError as exc:
                        log.warning("could not remove volume %s after a failed define: %s", volume.name(), exc)
                raise

        self._call(f"{'reimage' if fresh_disk else 'define'} {spec.name}", work)

    @staticmethod
    def _domain(conn: libvirt.virConnect, name: str) -> libvirt.virDomain | None:
        try:
            return conn.lookupByName(name)
        except libvirt.libvirtError as exc:
            if _code(exc) != libvirt.VIR_ERR_NO_DOMAIN:
                raise
            return None

    def start(self, name: str) -> None:
        def work(conn: libvirt.virConnect) -> None:
            domain = self._domain(conn, name)
            if domain is None:
                raise PermanentDriverError(f"start {name} on {self.uri}: no such domain")
            if domain.isActive():
                return
            try:
                domain.create()
            except libvirt.libvirtError:
                if not domain.isActive():  # a concurrent start is fine
                    raise

        self._call(f"start {name}", work)

    def _stop_requested(self, name: str) -> bool:
        """Press the ACPI power button; True when the domain is already off or missing."""

        def work(conn: libvirt.virConnect) -> bool:
            domain = self._domain(conn, name)
            if domain is None or not domain.isActive():
                return True
            try:
                domain.shutdownFlags(libvirt.VIR_DOMAIN_SHUTDOWN_ACPI_POWER_BTN)
            except libvirt.libvirtError as exc:
                if not domain.isActive():
                    return True
                if _code(exc) != libvirt.VIR_ERR_INVALID_ARG:
                    raise
                domain.shutdown()  # drivers without the ACPI flag (libvirt's test driver)
            return False

        return self._call(f"shutdown {name}", work)

    def _is_active(self, name: str) -> bool:
        def work(conn: libvirt.virConnect) -> bool:
            domain = self._domain(conn, name)
            return domain is not None and bool(domain.isActive())

        return self._call(f"state of {name}", work)

    def shutdown(self, name: str, timeout_s: float) -> bool:
        if self._stop_requested(name):
            return True
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._is_active(name):
                return True
            time.sleep(min(0.25, max(deadline - time.monotonic(), 0)))
        if not self._is_active(name):
            return True
        log.info("%s did not power off within %g s of the ACPI request; forcing it off", name, timeout_s)
        self.destroy(name)
        return False

    def destroy(self, name: str) -> None:
        def work(conn: libvirt.virConnect) -> None:
            domain = self._domain(conn, name)
            if domain is None or not domain.isActive():
                return
            try:
                domain.destroy()
            except libvirt.libvirtError:
                if domain.isActive():
                    raise

        self._call(f"destroy {name}", work)

    def undefine(self, name: str) -> None:
        def work(conn: libvirt.virConnect) -> None:
            domain = self._domain(conn, name)
            if domain is not None:
                if domain.isActive():
                    domain.destroy()
                flags = (
                    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                    | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
                    | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
                )
                try:
                    domain.undefineFlags(flags)
                except libvirt.libvirtError as exc:
                    if _code(exc) != libvirt.VIR_ERR_INVALID_ARG:
                        raise
                    domain.undefine()  # drivers that know none of these flags
            try:
                pool = conn.storagePoolLookupByName(self.pool)
            except libvirt.libvirtError as exc:
                if _code(exc) != libvirt.VIR_ERR_NO_STORAGE_POOL:
                    raise
                return
            if not pool.isActive():
                pool.create(0)
            for volume_name in volume_names(name):
                volume = self._volume(pool, volume_name)
                if volume is not None:
                    volume.delete(0)

        self._call(f"undefine {name}", work)

    def list_domains(self) -> list[DomainInfo]:
        def work(conn: libvirt.virConnect) -> list[DomainInfo]:
            found = []
            for domain in conn.listAllDomains(0):
                try:
                    state = domain.state()[0]
                    found.append(DomainInfo(domain.name(), domain.UUIDString(), _STATES.get(state, OTHER)))
                except libvirt.libvirtError as exc:
                    if _code(exc) != libvirt.VIR_ERR_NO_DOMAIN:
                        raise  # undefined while we listed
            return found

        return self._call("list domains", work)

    def domain_stats(self) -> list[DomainStats]:
        """One `virConnectGetAllDomainStats` call for every running domain's counters."""
        wanted = (libvirt.VIR_DOMAIN_STATS_CPU_TOTAL | libvirt.VIR_DOMAIN_STATS_VCPU
                  | libvirt.VIR_DOMAIN_STATS_BLOCK | libvirt.VIR_DOMAIN_STATS_INTERFACE)

        def work(conn: libvirt.virConnect) -> list[DomainStats]:
            found = []
            for domain, record in conn.getAllDomainStats(wanted, libvirt.VIR_CONNECT_GET_ALL_DOMAINS_STATS_ACTIVE):
                try:
                    found.append(stats_from_record(domain.name(), record))
                except libvirt.libvirtError as exc:
                    if _code(exc) != libvirt.VIR_ERR_NO_DOMAIN:
                        raise  # undefined while we asked
            return found

        return self._call("domain stats", work)

    def close(self) -> None:
        with self._conn_lock:
            conn, self._conn = self._conn, None
            self._generation += 1
        if conn is not None:
            closer = threading.Thread(target=self._forget, args=(conn,), daemon=True)
            closer.start()
            closer.join(self.timeout_s)
