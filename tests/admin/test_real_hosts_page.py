"""The admin host page for hosts as they really are (issue 18): memory-only NUMA nodes counted
apart and drawn as such, GPU locality recovered from local_cpulist said where it came from."""

from __future__ import annotations

from gpucloud.admin.topology import picture
from gpucloud.services import hosts
from gpucloud.services.host_memory import memory_by_instance
from tests.admin.conftest import admin_client
from tests.hypervisor.conftest import FIXTURES
from tests.live import run_cli


def test_the_host_page_counts_memory_only_nodes_apart_and_says_where_locality_came_from(server):
    for name in ("power9-6gpu-memory-nodes", "intel-2s-4gpu-hidden-locality"):
        run_cli(server.data_dir, "host", "add", "--profile", str(FIXTURES / "sysfs" / name), "--region", "eu-central",
                "--name", name)
    client = admin_client(server)
    power9 = client.get("/admin/hosts/power9-6gpu-memory-nodes").text
    tile = power9.split("data-numa-nodes", 1)[1].split("</section>", 1)[0]
    assert "2<small> +6 memory-only</small>" in tile and "never a guest's RAM" in tile
    assert "NUMA node 255 · memory-only" in power9
    hidden = client.get("/admin/hosts/intel-2s-4gpu-hidden-locality").text
    row = hidden.split('data-gpu-row="0000:86:00.0"', 1)[1].split("</tr>", 1)[0]
    assert "from local_cpulist 10-19,30-39 (the firmware reports -1)" in row


def test_a_memory_only_node_is_drawn_without_cores_and_its_memory_kept_from_guests(sqlite_db, tmp_path):
    from gpucloud.hypervisor.sysfs import topology_from_sysfs
    from tests.conftest import make_settings

    db, settings = sqlite_db, make_settings(tmp_path, sqlite_db.url)
    topology = topology_from_sysfs(FIXTURES / "sysfs" / "grace-hopper-1gpu")
    ref = hosts.register_host(db, settings, name="gh-1", region="us-east", topology=topology, driver="sim")
    drawn = picture(hosts.host_detail(db, ref.id), memory_by_instance(db, ref.id), str)
    assert [n.title for n in drawn.nodes] == ["NUMA node 0", "NUMA node 1 · memory-only"]
    hbm = drawn.nodes[1]
    assert hbm.threads == [] and hbm.gpus == [] and hbm.memory_label == "memory 96 GiB · not for guests"
    assert {s.fill for s in hbm.memory} == {".reserved"}
