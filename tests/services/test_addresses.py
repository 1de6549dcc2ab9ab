"""Guest addresses: pools per region, the next free IPv4 at create, a MAC and a SLAAC IPv6
per instance, never one address for two instances (racing creates, on both databases), a clear
"no capacity" when a region's addresses run out, and an address free again only once the
instance (and so its domain) is gone."""

from __future__ import annotations

import ipaddress
import threading

import pytest
from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from gpucloud.catalog import load_catalog
from gpucloud.errors import GpucloudError, ValidationErrors
from gpucloud.hypervisor.domain_xml import build_domain_xml
from gpucloud.hypervisor.profile import load_profile
from gpucloud.services import accounts, addresses, capacity, guests, hosts, instances, provisioning
from gpucloud.store import addresses as addresses_q
from gpucloud.store import instances as instance_rows
from gpucloud.store.addresses import PROBES
from gpucloud.store.tables import Instance, IpPool
from tests.conftest import make_settings

PLAN = "g6-nanode-1"


@pytest.fixture
def lab(store_db, tmp_path):
    settings = make_settings(tmp_path, store_db.url)
    for n in range(2):
        hosts.register_host(store_db, settings, name=f"addr-{n}", region="ap-west", topology=load_profile("cpu-2s"),
                            driver="sim", profile="cpu-2s")
    account = accounts.create_account(store_db, "addresses@example.com")
    with store_db.write() as s:  # ap-west's addresses: only what this test gives it
        s.execute(delete(IpPool).where(IpPool.region_id == "ap-west"))
    return store_db, settings, account


def create(lab, label=None):
    db, settings, account = lab
    return instances.create_instance(db, settings, account.id, account.username,
                                     instances.NewInstance(type=PLAN, region="ap-west", label=label))


def test_addresses_come_from_the_regions_pools_lowest_first(lab):
    db = lab[0]
    addresses.add_pool(db, "ap-west", "198.51.100.0/24", first="198.51.100.10", last="198.51.100.20", actor="t")
    addresses.add_pool(db, "ap-west", "2400:8904:1::/64", actor="t")
    first, second = create(lab), create(lab)
    assert (first.ipv4, second.ipv4) == ("198.51.100.10", "198.51.100.11")
    assert first.mac != second.mac and first.mac.startswith("52:54:00:")
    assert first.ipv6.startswith("2400:8904:1:0:5054:ff") and first.ipv6.endswith("/128")
    spec = guests.domain_spec(db, first.id)
    network = spec.cloud_init.network
    assert (network.mac, network.ipv4, network.ipv4_prefix, network.ipv4_gateway) == (
        first.mac, "198.51.100.10", 24, "198.51.100.1")
    assert network.ipv6 == first.ipv6.split("/")[0] and network.ipv6_gateway == "2400:8904:1::1"
    assert f"<mac address=\"{first.mac}\"/>" in build_domain_xml(spec)  # the interface the seed names
    (v4, v6) = sorted(addresses.pools(db, "ap-west"), key=lambda p: p.family)
    assert (v4.size, v4.assigned, v4.free) == (11, 2, 9) and v6.assigned == 2


def test_running_out_is_no_capacity_and_a_removed_instance_frees_its_address(lab):
    db = lab[0]
    addresses.add_pool(db, "ap-west", "192.0.2.0/29", first="192.0.2.2", last="192.0.2.3", actor="t")
    plan = load_catalog().plan(PLAN)
    assert capacity.available(db, lab[1], [plan], "ap-west") == {("ap-west", PLAN): True}
    kept, gone = create(lab), create(lab)
    assert capacity.free_ipv4(db, "ap-west") == {"ap-west": 0}
    assert capacity.available(db, lab[1], [plan], "ap-west") == {("ap-west", PLAN): False}  # what regions/availability says
    with pytest.raises(GpucloudError, match="No capacity: every IPv4 address of ap-west is assigned") as refused:
        create(lab)
    assert refused.value.field == "region"
    with db.read() as s:
        assert s.query(Instance).count() == 2  # nothing half-written
    instances.delete_instance(db, lab[2].id, gone.id, lab[2].username)
    with pytest.raises(GpucloudError, match="No capacity"):
        create(lab)  # being deleted: its domain may still run, the address stays taken
    provisioning.remove_instance(db, gone.id)  # what the delete job does once the host confirms
    assert create(lab).ipv4 == gone.ipv4 and kept.ipv4 == "192.0.2.2"


def gone(lab, instance):
    """Deleted and removed, as the delete job leaves it once the host confirms."""
    instances.delete_instance(lab[0], lab[2].id, instance.id, lab[2].username)
    provisioning.remove_instance(lab[0], instance.id)


def test_a_freed_address_comes_back_once_the_rest_of_the_pool_is_taken(lab):
    db = lab[0]
    addresses.add_pool(db, "ap-west", "198.51.100.0/24", first="198.51.100.10", last="198.51.100.29", actor="t")
    made = [create(lab) for _ in range(3)]
    gone(lab, made[0])
    assert create(lab).ipv4 == "198.51.100.13"  # after the newest (.12), not the freed .10
    made += [create(lab) for _ in range(16)]  # up to .29, the pool's last
    assert made[-1].ipv4 == "198.51.100.29"
    assert create(lab).ipv4 == "198.51.100.10"  # round from the start: the freed one


def test_a_long_taken_run_after_the_newest_still_finds_the_free_address_past_it(lab):
    db = lab[0]
    addresses.add_pool(db, "ap-west", "198.51.100.0/24", first="198.51.100.10", last="198.51.100.29", actor="t")
    made = {i.ipv4: i for i in (create(lab) for _ in range(20))}  # the whole pool
    gone(lab, made["198.51.100.10"])
    assert create(lab).ipv4 == "198.51.100.10"  # the newest now sits at the start of a full pool
    gone(lab, made["198.51.100.28"])  # 18 addresses on: past the first lookup of the next 16
    assert PROBES[0] < 18
    assert create(lab).ipv4 == "198.51.100.28"
    with pytest.raises(GpucloudError, match="No capacity: every IPv4 address of ap-west is assigned"):
        create(lab)


def test_past_every_lookup_the_regions_taken_addresses_are_read(lab):
    """A pool all but full, its one hole further after the newest instance than the lookups
    reach: found all the same; then the pool is full, and says so."""
    db, _, account = lab
    addresses.add_pool(db, "ap-west", "10.9.0.0/23", first="10.9.0.2", last="10.9.1.254", actor="t")
    size, hole = 509, sum(PROBES) + 5  # .2 to 1.254; the hole 277 addresses after the first
    numbers = [n for n in range(1, size) if n != hole] + [0]  # the newest (last) holds the first address
    rows = [{"account_id": account.id, "label": f"r-{i}", "region_id": "ap-west", "type_id": PLAN,
             "ipv4": str(ipaddress.IPv4Address("10.9.0.2") + n), "mac": f"52:54:01:00:{i >> 8:02x}:{i & 255:02x}"}
            for i, n in enumerate(numbers)]
    with db.write() as s:
        s.connection().execute(insert(Instance), rows)
    assert create(lab).ipv4 == str(ipaddress.IPv4Address("10.9.0.2") + hole)
    with pytest.raises(GpucloudError, match="No capacity: every IPv4 address of ap-west is assigned"):
        create(lab)


def test_a_jobs_read_of_an_instance_has_its_hosts_settings_and_its_regions_pools(lab):
    """What a job reads of its instance (one statement): its columns, its host's settings, and
    the pools the guest's network comes from, as the region lists them; none when it has none."""
    db, _, account = lab
    addresses.add_pool(db, "ap-west", "2400:8904:1::/64", actor="t")
    addresses.add_pool(db, "ap-west", "198.51.100.0/24", actor="t")
    placed = create(lab)
    with db.write() as s:
        unplaced = instance_rows.insert_new(s, Instance(account_id=account.id, region_id="ap-west", type_id=PLAN,
                                                        label="unplaced", authorized_keys=["ssh-ed25519 AAAA k"]))
    with db.read() as s:
        row, bare, gone = (instance_rows.row_of(s, i) for i in (placed.id, unplaced, unplaced + 1))
        pools = addresses_q.shapes(s, "ap-west")
    assert (row.id, row.ipv4, row.mac, row.host_id, row.created_at) == (
        placed.id, placed.ipv4, placed.mac, placed.host_id, placed.created_at)
    assert row.host_settings == {} and row.pools == tuple(pools) and [p.family for p in pools] == ["ipv4", "ipv6"]
    assert (bare.host_id, bare.host_settings, bare.authorized_keys) == (None, None, ("ssh-ed25519 AAAA k",))
    assert gone is None
    with db.write() as s:
        s.execute(delete(IpPool).where(IpPool.region_id == "ap-west"))
    with db.read() as s:
        assert instance_rows.row_of(s, placed.id).pools == ()


def test_the_insert_skips_a_taken_address_and_refuses_any_other_repeat(lab):
    db, _, account = lab
    addresses.add_pool(db, "ap-west", "198.51.100.0/24", actor="t")
    first = create(lab, label="first")

    def row(**given) -> Instance:
        return Instance(account_id=account.id, region_id="ap-west", type_id=PLAN, **given)

    with db.write() as s:
        assert instance_rows.insert_new_unless_address_taken(s, row(label="b", ipv4=first.ipv4)) is None
        fresh = instance_rows.insert_new_unless_address_taken(s, row(label="c", ipv4="198.51.100.200"))
        assert fresh is not None and s.get(Instance, fresh).ipv4 == "198.51.100.200"
        assert s.scalar(select(func.count()).select_from(Instance).where(Instance.label == "b")) == 0
    with pytest.raises(IntegrityError), db.write() as s:  # the label is unique per account: no skipping that
        instance_rows.insert_new_unless_address_taken(s, row(label="first", ipv4="198.51.100.201"))
    with pytest.raises(IntegrityError), db.write() as s:  # nor the MAC
        instance_rows.insert_new_unless_address_taken(s, row(label="d", ipv4="198.51.100.202", mac=first.mac))


def test_racing_creates_never_share_an_address(lab):
    db = lab[0]
    addresses.add_pool(db, "ap-west", "198.51.100.0/24", actor="t")
    made, failed = [], []

    def one(n: int) -> None:
        try:
            made.append(create(lab, label=f"race-{n}"))
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            failed.append(exc)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failed and len(made) == 12
    assert len({i.ipv4 for i in made}) == 12 and len({i.mac for i in made}) == 12
    assert len({i.ipv6 for i in made}) == 12 or all(i.ipv6 is None for i in made)


def test_the_database_refuses_one_address_for_two_instances(lab):
    db = lab[0]
    addresses.add_pool(db, "ap-west", "198.51.100.0/24", actor="t")
    a, b = create(lab), create(lab)
    with pytest.raises(IntegrityError), db.write() as s:
        s.get(Instance, b.id).ipv4 = a.ipv4
    with pytest.raises(IntegrityError), db.write() as s:
        s.get(Instance, b.id).mac = a.mac


def test_pools_are_checked(lab):
    db = lab[0]
    addresses.add_pool(db, "ap-west", "198.51.100.0/24", actor="t")
    for network, kw, why in [
        ("198.51.100.128/25", {}, "overlaps pool"),
        ("2400:8904:1::/48", {}, "an IPv6 pool is a /64"),
        ("203.0.113.0/24", {"gateway": "192.0.2.1"}, "gateway 192.0.2.1 is not in 203.0.113.0/24"),
        ("203.0.113.0/24", {"first": "203.0.113.9", "last": "203.0.113.5"}, "comes after"),
        ("not-a-network", {}, "not a network"),
    ]:
        with pytest.raises(ValidationErrors, match=why):
            addresses.add_pool(db, "ap-west", network, actor="t", **kw)
    with pytest.raises(ValidationErrors, match="unknown region"):
        addresses.add_pool(db, "mars-1", "203.0.113.0/24", actor="t")
