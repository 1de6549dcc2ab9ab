"""Guests' counters from each driver: the sim's grow like a busy guest's and start again with a
boot; libvirt's come from one virConnectGetAllDomainStats call, summed over disks and NICs."""

from __future__ import annotations

import time

from gpucloud.hypervisor.libvirt_driver import LibvirtDriver, stats_from_record
from gpucloud.hypervisor.sim import SimDriver
from tests.jobs.handlers import spec_for


def test_sim_counters_grow_while_running_and_restart_with_a_boot(tmp_path):
    driver = SimDriver(tmp_path, "sim-counters", "rtx6000-2s4g", boot_seconds=0)
    driver.define(spec_for(1))
    driver.define(spec_for(2, gpu="0000:5e:00.0"))
    driver.start("gpucloud-1")
    assert [s.name for s in driver.domain_stats()] == ["gpucloud-1"]  # a stopped domain has no counters
    time.sleep(0.2)
    (first,) = driver.domain_stats()
    time.sleep(0.2)
    (later,) = driver.domain_stats()
    assert first.name == "gpucloud-1" and first.vcpus == 2
    assert 0 < first.cpu_seconds < later.cpu_seconds <= 2 * 0.5  # at most both vCPUs busy
    assert first.net_tx_bytes < later.net_tx_bytes and first.disk_ops <= later.disk_ops
    driver.destroy("gpucloud-1")
    assert driver.domain_stats() == []
    driver.start("gpucloud-1")
    assert driver.domain_stats()[0].net_rx_bytes < later.net_rx_bytes


def test_a_libvirt_stats_record_is_summed_over_disks_and_interfaces():
    record = {"state.state": 1, "cpu.time": 2_500_000_000, "vcpu.current": 8, "block.count": 2,
              "block.0.rd.reqs": 10, "block.0.wr.reqs": 5, "block.0.rd.bytes": 4096, "block.0.wr.bytes": 8192,
              "block.1.rd.reqs": 1, "block.1.rd.bytes": 512, "net.count": 1, "net.0.rx.bytes": 1000,
              "net.0.tx.bytes": 300}
    stats = stats_from_record("gpucloud-4", record)
    assert (stats.vcpus, stats.cpu_seconds, stats.disk_ops, stats.disk_bytes) == (8, 2.5, 16, 12800)
    assert (stats.net_rx_bytes, stats.net_tx_bytes) == (1000, 300)
    assert stats_from_record("x", {"state.state": 1}).cpu_seconds == 0


def test_the_libvirt_driver_asks_for_running_domains_counters(test_host_uri, two_gpu_spec):
    driver = LibvirtDriver(test_host_uri)
    spec = two_gpu_spec()
    driver.define(spec)
    assert spec.name not in {s.name for s in driver.domain_stats()}  # defined, not running
    driver.start(spec.name)
    assert spec.name in {s.name for s in driver.domain_stats()}  # libvirt's test driver reports no counters
