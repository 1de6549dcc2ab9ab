"""A refused GPU plan names the real cause, from the same counts `gpucloud capacity` shows."""

from __future__ import annotations

from gpucloud.domain.capacity import capacity_rows, explain_refusal, unlock_hints
from gpucloud.domain.placement import NoRoom, PlacementConfig, place
from tests.domain.test_placement import gpu_address, gpu_plan, gpu_request, host, topology

CONFIG = PlacementConfig()


def why(request, hosts) -> NoRoom:
    refusal = place(request, hosts, CONFIG)
    assert isinstance(refusal, NoRoom), refusal
    return explain_refusal(request, hosts, CONFIG, refusal, where="r1 (Mumbai, IN)", model_name="H100")


def all_gpus(h) -> list[str]:
    return [g.address for n in h.nodes for g in n.gpus]


def test_no_host_with_the_model_is_named_as_such_even_with_other_hosts_there():
    refusal = why(gpu_request(1, model="h100"), [host(1), host(2, topology((0, 0)))])
    assert (refusal.code, refusal.reason) == ("no-model", "No host in region r1 (Mumbai, IN) has H100 GPUs.")


def test_every_gpu_claimed():
    hosts = [host(1, model="h100", claimed_gpus=all_gpus(host(1)))]
    refusal = why(gpu_request(1, model="h100"), hosts)
    assert refusal.reason == "All 4 H100 GPUs in r1 (Mumbai, IN) are claimed."


def test_claimed_and_the_rest_out_of_service_says_why():
    busy = host(1, model="h100", claimed_gpus=all_gpus(host(1)))
    draining = host(2, model="h100", status="draining")
    faulty = host(3, topology((1, 0)), model="h100", gpu_statuses={gpu_address(0, 0): "faulty"})
    refusal = why(gpu_request(1, model="h100"), [busy, draining, faulty])
    assert refusal.reason == ("4 of the 9 H100 GPUs in r1 (Mumbai, IN) are claimed; the rest are out of "
                              "service (faulty 1, host draining 4).")


def test_all_out_of_service_numa_unknown_and_blocked():
    odd = host(1, topology((0, 1), unknown_gpus=2, blocked=[gpu_address(1, 0)]), model="h100")
    refusal = why(gpu_request(1, model="h100"), [odd])
    assert refusal.code == "out-of-service"
    assert refusal.reason == ("All 3 H100 GPUs in r1 (Mumbai, IN) are out of service "
                              "(IOMMU group shared with a host device 1, NUMA node unknown 2).")


def test_too_few_free_for_the_plan():
    h = host(1, model="h100", claimed_gpus=all_gpus(host(1))[:3])
    refusal = why(gpu_request(2, model="h100"), [h])
    assert refusal.reason == "Only 1 H100 GPU free in r1 (Mumbai, IN) (3 claimed); the plan takes 2."


def test_free_but_stranded_across_hosts():
    hosts = [host(1, topology((1, 0)), model="h100"), host(2, topology((1, 0)), model="h100")]
    refusal = why(gpu_request(2, model="h100"), hosts)
    assert refusal.code == "stranded"
    assert refusal.reason == ("2 H100 GPUs are free in r1 (Mumbai, IN) (0 claimed), but stranded: "
                              "no host has 2 free (at most 1 on one host).")


def test_free_but_stranded_without_cores_beside_them():
    h = host(1, topology((2, 0), cores=4, memory_gib=256), model="h100")
    refusal = why(gpu_request(1, vcpus=10, memory_gib=8, model="h100"), [h])
    assert refusal.code == "stranded"
    assert "no host has 10 vCPUs (whole cores) and 8 GiB of memory free" in refusal.reason
    assert refusal.reason.endswith("(cores ran out).")


def test_pinned_and_cpu_requests_keep_placements_reason():
    pinned = gpu_request(1, host_id=9)
    refusal = place(pinned, [host(1)], CONFIG)
    assert isinstance(refusal, NoRoom)
    assert explain_refusal(pinned, [host(1)], CONFIG, refusal, where="r1", model_name="x") is refusal


def test_unlock_hints_name_stranded_sizes_and_unplaceable_gpus():
    plans = [gpu_plan(1, model="h100"), gpu_plan(2, model="h100")]
    split = [host(1, topology((1, 0)), model="h100"), host(2, topology((1, 0)), model="h100",
                                                        gpu_statuses={gpu_address(0, 0): "faulty"}),
             host(3, topology((1, 0)), model="h100")]
    [row] = capacity_rows(split, plans, CONFIG)
    assert unlock_hints(row, plans, model_name="H100", gpu_region=True) == [
        "1 unplaceable (faulty 1): fixing them unlocks more", "2 H100 GPUs free but stranded: no 2-GPU fit"]
    claimed = [host(1, topology((1, 0)), model="h100", claimed_gpus=[gpu_address(0, 0)])]
    [row] = capacity_rows(claimed, plans, CONFIG)
    assert unlock_hints(row, plans, model_name="H100", gpu_region=True) == ["all 1 claimed"]
    assert unlock_hints(None, plans, model_name="H100", gpu_region=True) == ["no host has H100 GPUs"]
