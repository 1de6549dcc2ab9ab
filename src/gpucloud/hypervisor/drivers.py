"""One driver per host per process: `driver_for(host, settings)`.

A libvirt connection is costly to open (TLS handshake) and thread-safe to share, so each
worker process keeps one per host and hands it to every job on that host. The cache is
per process: a forked child starts with an empty one rather than a parent's socket.
"""

from __future__ import annotations

import contextlib
import os
import threading

from gpucloud.config import Settings
from gpucloud.errors import ConfigError
from gpucloud.hypervisor.base import HypervisorDriver
from gpucloud.hypervisor.sim import SimDriver

LIBVIRT_OPTIONS = ("nic", "pool", "pool_path")  # per-host driver options kept in the host's settings
_lock = threading.Lock()
_cache: dict[tuple, HypervisorDriver] = {}
_owner_pid = os.getpid()


def driver_for(host, settings: Settings) -> HypervisorDriver:
    """The driver for a host row (anything with id, name, driver, uri and profile)."""
    global _owner_pid
    key = (host.id, host.driver, host.uri, host.name, host.profile, str(settings.data_dir))
    with _lock:
        if _owner_pid != os.getpid():
            _cache.clear()
            _owner_pid = os.getpid()
        driver = _cache.get(key)
        if driver is None:
            stale = [k for k in _cache if k[0] == host.id]  # the host was renamed or re-pointed
            for k in stale:
                _close_quietly(_cache.pop(k))
            driver = _cache[key] = _new_driver(host, settings)
        return driver


def forget(host_id: int) -> None:
    """Drop (and close) a host's cached driver, e.g. after the host was removed."""
    with _lock:
        for key in [k for k in _cache if k[0] == host_id]:
            _close_quietly(_cache.pop(key))


def close_all() -> None:
    with _lock:
        for driver in _cache.values():
            _close_quietly(driver)
        _cache.clear()


def _new_driver(host, settings: Settings) -> HypervisorDriver:
    if host.driver == "sim":
        return SimDriver(settings.data_dir, host.name, host.profile, boot_seconds=settings.sim_boot_seconds,
                         shutdown_seconds=settings.sim_shutdown_seconds,
                         provision_seconds=settings.sim_provision_seconds,
                         resize_seconds=settings.sim_resize_seconds, rebuild_seconds=settings.sim_rebuild_seconds,
                         timeout_s=settings.driver_timeout_seconds)
    if host.driver == "libvirt":
        if not host.uri:
            raise ConfigError(f"host {host.name} uses the libvirt driver but has no URI")
        from gpucloud.hypervisor.libvirt_driver import LibvirtDriver  # libvirt-python is optional: only here

        options = {k: v for k, v in (host.settings or {}).items() if k in LIBVIRT_OPTIONS}
        return LibvirtDriver(host.uri, timeout_s=settings.driver_timeout_seconds, **options)
    raise ConfigError(f"host {host.name}: unknown driver {host.driver!r}")


def _close_quietly(driver: HypervisorDriver) -> None:
    with contextlib.suppress(Exception):  # closing a dead connection must not fail the caller
        driver.close()
