"""The geometry behind the admin's drawings: a host's topology and the capacity chart."""

from __future__ import annotations

from datetime import datetime, timedelta

from gpucloud.admin.charts import capacity_chart, nice_step
from gpucloud.admin.topology import OTHERS, PALETTE, picture
from gpucloud.services import accounts, hosts
from gpucloud.services.host_memory import memory_by_instance
from gpucloud.services.instances import NewInstance, create_instance
from tests.factories import two_node_host


def test_topology_colours_what_each_instance_holds(sqlite_db, tmp_path):
    from tests.conftest import make_settings

    db, settings = sqlite_db, make_settings(tmp_path, sqlite_db.url)
    ref = hosts.register_host(db, settings, name="gpu-1", region="us-east",
                              topology=two_node_host(cores_per_node=16, memory_gib=256), driver="sim", profile="t")
    dave = accounts.create_account(db, "dave@example.com", username="dave")
    one = create_instance(db, settings, dave.id, "dave", NewInstance(type="g1-gpu-rtx6000-1", region="us-east"),
                          bypass_flags=True)
    two = create_instance(db, settings, dave.id, "dave", NewInstance(type="g1-gpu-rtx6000-2", region="us-east"),
                          bypass_flags=True)
    detail = hosts.host_detail(db, ref.id)
    drawn = picture(detail, memory_by_instance(db, ref.id), lambda iid: f"/admin/instances/{iid}")

    assert [n.title for n in drawn.nodes] == ["NUMA node 0", "NUMA node 1"]
    assert [(h.instance_id, h.colour, h.account) for h in drawn.legend] == [
        (one.id, PALETTE[0], "dave@example.com"), (two.id, PALETTE[1], "dave@example.com")]
    threads = [t for n in drawn.nodes for t in n.threads]
    assert len(threads) == 64  # every logical CPU, one strip each
    for holder, plan_vcpus, gpus, gib in ((drawn.legend[0], 8, 1, 32), (drawn.legend[1], 16, 2, 64)):
        mine = [t for t in threads if t.fill == holder.colour]
        assert len(mine) == holder.cpus == plan_vcpus
        assert {t.href for t in mine} == {f"/admin/instances/{holder.instance_id}"}
        assert holder.gpus == gpus == sum(1 for n in drawn.nodes for g in n.gpus if g.fill == holder.colour)
        assert holder.memory_mib == gib * 1024
        bar = sum(s.w for n in drawn.nodes for s in n.memory if s.fill == holder.colour)
        assert abs(bar - (drawn.nodes[0].w - 28) * gib / 256) < 0.01  # nodes of 256 GiB, bars of equal width
    reserved = [t for t in threads if t.fill == ".reserved"]
    assert len(reserved) == 2 * 2 * 2  # two cores per node, both threads
    free_gpus = [g for n in drawn.nodes for g in n.gpus if g.fill == ".free"]
    assert len(free_gpus) == 4 - 3
    # an instance's page shows only that instance in colour among its neighbours
    focused = picture(detail, memory_by_instance(db, ref.id), str, focus=two.id)
    fills = [t.fill for n in focused.nodes for t in n.threads]
    assert (fills.count(PALETTE[0]), fills.count(OTHERS)) == (16, 8)
    # memory bars: reserved, held, free add up to the node's width
    for node, raw in zip(drawn.nodes, detail["nodes"]):
        assert abs(sum(s.w for s in node.memory) - (node.w - 28)) < 0.01
        assert node.memory_label.startswith(f"memory {raw['memory_mib'] // 1024} GiB")


def test_topology_marks_faulty_and_unplaceable_gpus(sqlite_db, tmp_path):
    from tests.conftest import make_settings

    db, settings = sqlite_db, make_settings(tmp_path, sqlite_db.url)
    ref = hosts.register_host(db, settings, name="gpu-1", region="us-east", topology=two_node_host(),
                              driver="sim", profile="t")
    hosts.set_gpu_status(db, "gpu-1", "0000:3b:00.0", "faulty", why="xid 79", actor="t")
    drawn = picture(hosts.host_detail(db, ref.id), {}, str)
    cards = {g.address: g for n in drawn.nodes for g in n.gpus}
    assert cards["3b:00.0"].state == "faulty" and cards["3b:00.0"].fill == ".faulty"
    assert "xid 79" in cards["3b:00.0"].title
    assert drawn.legend == []


def test_chart_stacks_claimed_free_and_unavailable_up_to_the_total():
    start = datetime(2026, 3, 1)
    points = [{"at": start + timedelta(hours=h), "claimed": c, "free": f, "unavailable": u}
              for h, (c, f, u) in enumerate([(2, 10, 0), (6, 6, 0), (6, 2, 4)])]
    chart = capacity_chart(points, start, start + timedelta(hours=2), width=300, height=124)

    assert [css for css, _ in chart.areas] == ["claimed", "free", "unavailable"]
    step = (chart.bottom - chart.top) / max(t for t in (int(t.label) for t in chart.y_ticks))
    top_edge = chart.lines[-1][1]
    ys = [float(pair.split()[1]) for pair in top_edge[2:].split(" L ")]
    assert ys == [round(chart.bottom - 12 * step, 1)] * 3  # the total stayed 12
    claimed = [float(pair.split()[1]) for pair in chart.lines[0][1][2:].split(" L ")]
    assert claimed == [round(chart.bottom - c * step, 1) for c in (2, 6, 6)]
    assert "unavailable 4" in chart.columns[-1].title and not chart.empty


def test_chart_with_fewer_than_two_points_is_empty_and_says_since_when():
    start = datetime(2026, 3, 1)
    lone = [{"at": start + timedelta(hours=23), "claimed": 1, "free": 1, "unavailable": 0}]
    chart = capacity_chart(lone, start, start + timedelta(hours=24))
    assert chart.empty and chart.areas == [] and chart.partial


def test_nice_steps():
    assert [nice_step(v) for v in (4, 10, 84, 130, 1000, 7)] == [1, 5, 50, 50, 500, 2]


def test_chart_of_a_fresh_fleet_spans_only_the_time_with_data():
    start = datetime(2026, 3, 1)
    end = start + timedelta(hours=24)
    recent = [{"at": end - timedelta(minutes=m), "claimed": 1, "free": 3, "unavailable": 0} for m in (40, 20, 0)]
    chart = capacity_chart(recent, start, end, width=300, height=124)
    xs = [float(pair.split()[0]) for pair in chart.lines[0][1][2:].split(" L ")]
    assert xs == [chart.left, round(chart.left + (chart.right - chart.left) / 2, 1), chart.right]
    assert chart.partial and chart.first_at == end - timedelta(minutes=40)
    assert [t.label for t in chart.x_ticks] == ["23:25", "23:30", "23:35", "23:40", "23:45", "23:50", "23:55",
                                                "00:00"]  # every 5 minutes of the 40 there are
    assert all(chart.left <= t.at <= chart.right for t in chart.x_ticks)
