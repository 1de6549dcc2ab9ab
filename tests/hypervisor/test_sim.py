"""The simulated hypervisor: the driver protocol, idempotency, each injected fault, and one
host's state shared by drivers in different processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gpucloud.hypervisor.base import (
    RUNNING,
    SHUTOFF,
    DomainInfo,
    DriverError,
    DriverTimeout,
    HostUnreachable,
    PermanentDriverError,
)
from gpucloud.hypervisor.drivers import driver_for
from gpucloud.hypervisor.profile import load_profile
from gpucloud.hypervisor.sim import SimDriver, clear_faults, inject_fault, read_state
from tests.conftest import make_settings
from tests.jobs.handlers import spec_for
from tests.live import clean_env

REPO = Path(__file__).resolve().parents[2]
HOST = "sim-test-01"


@pytest.fixture
def driver(tmp_path) -> SimDriver:
    return SimDriver(tmp_path, HOST, "rtx6000-2s4g", boot_seconds=0.2, shutdown_seconds=0.05, timeout_s=0.2)


def states(driver) -> dict[str, str]:
    return {d.name: d.state for d in driver.list_domains()}


def test_discover_returns_the_profile_topology(driver):
    assert driver.discover() == load_profile("rtx6000-2s4g")


def test_lifecycle_define_start_shutdown_destroy_undefine(driver):
    spec = spec_for(7)
    driver.define(spec)
    assert driver.list_domains() == [DomainInfo("gpucloud-7", spec.uuid, SHUTOFF)]
    began = time.monotonic()
    driver.start("gpucloud-7")
    assert time.monotonic() - began >= 0.2  # the guest took its boot time
    assert states(driver) == {"gpucloud-7": RUNNING}
    assert driver.shutdown("gpucloud-7", timeout_s=1) is True  # the guest obeyed ACPI
    assert states(driver) == {"gpucloud-7": SHUTOFF}
    driver.start("gpucloud-7")
    driver.destroy("gpucloud-7")
    assert states(driver) == {"gpucloud-7": SHUTOFF}
    driver.undefine("gpucloud-7")
    assert driver.list_domains() == []


def test_every_operation_is_idempotent(driver):
    spec = spec_for(8)
    driver.define(spec)
    driver.define(spec)
    driver.start("gpucloud-8")
    began = time.monotonic()
    driver.start("gpucloud-8")  # already up: returns without booting again
    assert time.monotonic() - began < 0.15
    driver.define(spec)  # redefining a running domain keeps it running
    assert states(driver) == {"gpucloud-8": RUNNING}
    driver.undefine("gpucloud-8")  # a running domain is forced off, then removed
    driver.undefine("gpucloud-8")
    driver.destroy("gpucloud-8")
    assert driver.shutdown("gpucloud-8", timeout_s=1) is True
    assert driver.list_domains() == []


def test_a_start_killed_mid_boot_is_finished_by_the_next_start(tmp_path):
    SimDriver(tmp_path, HOST, "rtx6000-2s4g").define(spec_for(9))
    starter = subprocess.Popen([sys.executable, "-c", "import sys; from gpucloud.hypervisor.sim import SimDriver; "
                                "SimDriver(sys.argv[1], sys.argv[2], 'rtx6000-2s4g', boot_seconds=1.5)"
                                ".start('gpucloud-9')", str(tmp_path), HOST], cwd=REPO, env=clean_env())
    try:
        deadline = time.monotonic() + 20
        while read_state(tmp_path, HOST)["domains"]["gpucloud-9"]["state"] != RUNNING:
            assert time.monotonic() < deadline and starter.poll() is None
            time.sleep(0.02)
    finally:
        starter.kill()  # the guest was launched; its boot goes on without the caller
        starter.wait(10)
    ready_at = read_state(tmp_path, HOST)["domains"]["gpucloud-9"]["ready_at"]
    SimDriver(tmp_path, HOST, "rtx6000-2s4g", boot_seconds=1.5).start("gpucloud-9")
    assert time.time() >= ready_at  # returned once the guest was up...
    domains = read_state(tmp_path, HOST)["domains"]
    assert list(domains) == ["gpucloud-9"] and domains["gpucloud-9"]["ready_at"] == ready_at  # ...the same boot


def test_start_of_an_undefined_domain_and_unknown_gpus_are_permanent(driver):
    with pytest.raises(PermanentDriverError, match="no such domain"):
        driver.start("gpucloud-404")
    with pytest.raises(PermanentDriverError, match="no PCI device 0000:99:00.0"):
        driver.define(spec_for(10, gpu="0000:99:00.0"))
    assert driver.list_domains() == []


def test_a_gpu_held_by_a_running_domain_cannot_start_in_another(driver):
    driver.define(spec_for(11, gpu="0000:86:00.0"))
    driver.define(spec_for(12, gpu="0000:86:00.0"))
    driver.start("gpucloud-11")
    with pytest.raises(DriverError, match="0000:86:00.0 is in use by domain gpucloud-11") as err:
        driver.start("gpucloud-12")
    assert err.value.retryable
    driver.destroy("gpucloud-11")
    driver.start("gpucloud-12")
    assert states(driver) == {"gpucloud-11": SHUTOFF, "gpucloud-12": RUNNING}


def test_injected_failures_change_nothing_and_run_out(driver, tmp_path):
    inject_fault(tmp_path, HOST, "define", "fail", times=2)
    for _ in range(2):
        with pytest.raises(DriverError, match="define on sim host sim-test-01: failed") as err:
            driver.define(spec_for(13))
        assert err.value.retryable and type(err.value) is DriverError
    assert driver.list_domains() == []
    driver.define(spec_for(13))  # the fault is spent
    inject_fault(tmp_path, HOST, "start", "permanent")
    for _ in range(3):
        with pytest.raises(PermanentDriverError) as err:
            driver.start("gpucloud-13")
        assert not err.value.retryable
    assert states(driver) == {"gpucloud-13": SHUTOFF}
    clear_faults(tmp_path, HOST)
    driver.start("gpucloud-13")
    assert read_state(tmp_path, HOST)["calls"] == {"define": 3, "start": 4, "list_domains": 2}


def test_a_hung_call_times_out_after_the_driver_timeout(driver, tmp_path):
    driver.define(spec_for(14))
    inject_fault(tmp_path, HOST, "start", "hang", times=1)
    began = time.monotonic()
    with pytest.raises(DriverTimeout, match="no answer within 0.2 s") as err:
        driver.start("gpucloud-14")
    assert 0.2 <= time.monotonic() - began < 1.0 and err.value.retryable
    assert states(driver) == {"gpucloud-14": SHUTOFF}


def test_an_unreachable_host_fails_every_operation_until_cleared(driver, tmp_path):
    driver.define(spec_for(15))
    inject_fault(tmp_path, HOST, "*", "unreachable")
    calls = [driver.discover, driver.list_domains, lambda: driver.define(spec_for(15)),
             lambda: driver.start("gpucloud-15"), lambda: driver.shutdown("gpucloud-15", 1),
             lambda: driver.destroy("gpucloud-15"), lambda: driver.undefine("gpucloud-15")]
    for call in calls:
        with pytest.raises(HostUnreachable, match="unreachable"):
            call()
    clear_faults(tmp_path, HOST, "*")
    assert states(driver) == {"gpucloud-15": SHUTOFF}


def test_a_guest_ignoring_acpi_is_forced_off_after_the_timeout(driver, tmp_path):
    driver.define(spec_for(16))
    driver.start("gpucloud-16")
    inject_fault(tmp_path, HOST, "shutdown", "ignore_acpi", times=1)
    began = time.monotonic()
    assert driver.shutdown("gpucloud-16", timeout_s=0.3) is False
    assert time.monotonic() - began >= 0.3
    assert states(driver) == {"gpucloud-16": SHUTOFF}


def test_clear_faults_of_one_operation_keeps_the_others(driver, tmp_path):
    inject_fault(tmp_path, HOST, "define", "fail")
    inject_fault(tmp_path, HOST, "start", "fail")
    clear_faults(tmp_path, HOST, "define")
    assert [f["operation"] for f in read_state(tmp_path, HOST)["faults"]] == ["start"]


@pytest.mark.parametrize("args, message", [
    (("defne", "fail"), "unknown operation"), (("define", "explode"), "unknown fault kind"),
    (("define", "ignore_acpi"), "only applies to shutdown"), (("define", "fail", 0), "times"),
])
def test_bad_fault_injection_is_refused(tmp_path, args, message):
    with pytest.raises(ValueError, match=message):
        inject_fault(tmp_path, HOST, *args)
    assert read_state(tmp_path, HOST)["faults"] == []


def test_host_names_cannot_escape_the_sim_folder(tmp_path):
    for bad in ("../etc", "a/b", "", ".hidden"):
        with pytest.raises(ValueError, match="sim host name"):
            SimDriver(tmp_path, bad, "rtx6000-2s4g")


_OTHER_PROCESS = """
import json, sys
from gpucloud.hypervisor.sim import SimDriver, inject_fault
from gpucloud.hypervisor.base import DriverError
from tests.jobs.handlers import spec_for
data_dir, host = sys.argv[1], sys.argv[2]
driver = SimDriver(data_dir, host, "rtx6000-2s4g", boot_seconds=0)
seen = [d.name for d in driver.list_domains()]
try:
    driver.start("gpucloud-20")
    outcome = "started"
except DriverError as exc:
    outcome = exc.reason
driver.define(spec_for(21, gpu="0000:af:00.0"))
inject_fault(data_dir, host, "undefine", "fail", times=1)
print(json.dumps({"seen": seen, "start": outcome}))
"""


def test_two_processes_share_one_host(driver, tmp_path):
    driver.define(spec_for(20))
    inject_fault(tmp_path, HOST, "start", "fail", times=1)  # met by the other process
    done = subprocess.run([sys.executable, "-c", _OTHER_PROCESS, str(tmp_path), HOST], cwd=REPO,
                          env=clean_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    other = json.loads(done.stdout)
    assert other == {"seen": ["gpucloud-20"], "start": "start on sim host sim-test-01: failed (injected fault)"}
    assert states(driver) == {"gpucloud-20": SHUTOFF, "gpucloud-21": SHUTOFF}  # what the other one defined
    with pytest.raises(DriverError):  # the fault the other one injected
        driver.undefine("gpucloud-21")
    driver.undefine("gpucloud-21")
    assert states(driver) == {"gpucloud-20": SHUTOFF}


def test_driver_for_keeps_one_driver_per_host(tmp_path):
    from gpucloud.store.tables import Host

    settings = make_settings(tmp_path, f"sqlite:///{tmp_path}/db.sqlite", sim_boot_seconds=0.5,
                             driver_timeout_seconds=3)
    a = Host(id=1, name="sim-a", driver="sim", profile="rtx6000-2s4g", uri=None)
    b = Host(id=2, name="sim-b", driver="sim", profile="rtx6000-2s4g", uri=None)
    first = driver_for(a, settings)
    assert driver_for(a, settings) is first and driver_for(b, settings) is not first
    assert (first.host_name, first.boot_seconds, first.timeout_s) == ("sim-a", 0.5, 3)
    renamed = Host(id=1, name="sim-a2", driver="sim", profile="rtx6000-2s4g", uri=None)
    assert driver_for(renamed, settings).host_name == "sim-a2"

    real = driver_for(Host(id=3, name="lv", driver="libvirt", uri="test:///default"), settings)
    assert type(real).__name__ == "LibvirtDriver" and real.uri == "test:///default"
    assert [d.name for d in real.list_domains()] == ["test"]  # libvirt's own test driver
