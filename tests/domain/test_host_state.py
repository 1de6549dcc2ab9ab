"""`build_host_state` with a memo (one per read of many hosts): hosts whose inputs are equal
but for their ids and generations share one state's nodes, GPUs and shape, and every state
equals the one built without it."""

from __future__ import annotations

from gpucloud.domain.host_state import build_host_state
from gpucloud.domain.topology import HostTopology
from gpucloud.hypervisor.profile import builtin_profiles, load_profile


def _inputs(topology: HostTopology) -> list[dict]:
    """Idle first, then each input that changes a state, one at a time."""
    node = topology.cpu_nodes[-1]
    models = {gpu.address: "m" for gpu in topology.gpus}
    out: list[dict] = [{}, {"claimed_cpus": node.cores()[-1]}, {"claimed_memory_mib": {node.index: 1024}},
                       {"claimed_hugepages": {node.index: 1}}, {"shared_vcpus": {node.index: 2}},
                       {"reserved_cpus": ()}, {"reserved_cores_per_node": 1}, {"reserved_memory_mib": 0},
                       {"reserved_memory_mib": {node.index: 0}}]
    if topology.gpus:
        address = topology.gpus[-1].address
        out += [{"claimed_gpus": [address]}, {"claimed_gpus": [address], "staff_gpus": [address]},
                {"gpu_statuses": {address: "faulty"}}, {"gpu_statuses": {address: "reserved"}},
                {"gpu_models": {a: m for a, m in models.items() if a != address}},
                {"gpu_models": {**models, address: "other"}}]
    return [{"gpu_models": models, **each} for each in out]


def test_a_memo_shares_equal_states_and_changes_none():
    memo: dict = {}
    built = 0
    hosts = [("us-east", "active", None), ("us-east", "active", None), ("eu-central", "active", None),
             ("us-east", "draining", None), ("us-east", "active", {"shared_cpu_overcommit": 2.0}),
             ("us-east", "active", {"shared_cpu_overcommit": 2.0})]  # equal: the 1st and 2nd, the 5th and 6th
    for name in sorted(builtin_profiles()):
        topology = load_profile(name)
        for inputs in _inputs(topology):
            models = inputs.pop("gpu_models")
            states = []
            for host_id, (region, status, overrides) in enumerate(hosts):
                own = {"status": status, "generation": 10 + host_id, "overrides": overrides}
                state = build_host_state(host_id, region, topology, models, **own, **inputs, memo=memo)
                alone = build_host_state(host_id, region, topology, models, **own, **inputs)
                assert state == alone and state.shape == alone.shape, (name, inputs, host_id)
                states.append(state)
            for a, b in ((0, 1), (4, 5)):
                assert states[a].nodes is states[b].nodes and states[a].shape is states[b].shape
            built += 4
    assert len(memo) == built  # one state built per profile, inputs, region, status and overrides
