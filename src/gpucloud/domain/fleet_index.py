"""Placement over thousands of hosts: the same answers as `place`, without scanning every host.

Hosts are bucketed by their free shape (region, status and per-node free resources), because
hosts of one shape rank identically for every request. For each (region, request) seen, a
heap orders the buckets by rank; a decision pops the best rank, takes the lowest host id
among the buckets tied on it, and materialises on that host the assignment its scoring found. Only the host
that changed moves between buckets, and only a shape never seen before costs a real scoring.

`first-fit` and `random` rank hosts by the placement rules alone, so thousands of shapes tie
on the best rank: for them the index keeps, instead of a heap of shapes, per request and rank
the sorted ids of the hosts on that rank (a handful of ranks), so `first-fit` reads the lowest
id at once instead of walking the tied shapes; a shape leaves them as soon as its last host
does. Their rank is the rules' alone, so where one NUMA node takes the whole request (a plan
without GPUs on a CPU-only host, a GPU plan on one node) or two take a GPU plan between them,
`numa_floors.rules_rank` gives it from the shape's `cell_rooms`, kept in its entry with its
bucket: a request's first ranking reads thousands of entries without scoring or looking up
any. `random` does not even read them: it
draws by trying hosts of a pool that holds every tied one (`placement.draw`;
`placement.pools`, kept sorted per region) and tells a tried host is tied from its shape, so a
first call ranks the first host on the lowest rank there is and leaves the others pending,
ranked PENDING_CHUNK a call later (all at once if a draw must list them); where no node of
any host takes a GPU plan whole, that is two nodes at the least distance of any two holding
its GPUs (`numa_floors.split_floor`), if the rules rank a host there. So does first-fit
for a plan without GPUs: on CPU-only hosts it ranks the shape of the lowest id a node of which
takes the plan (every such host is on the lowest rank there is) and reads the pending shapes'
lowest ids for a lower one at a decision; where no CPU-only host takes it (GPU hosts only), it
tries the region's lowest ids for one on that rank below the ranked hosts' lowest (`_lowest`).

The requests of the config's plans (`PlacementConfig.plans`: the catalog's, in the product)
get their heaps when the fleet loads a region (`warm`), so no decision for a plan of the
catalog ranks the whole region. A request of any other shape builds its heap on first use
from the shapes that can take it at all: the live shapes with free GPUs of its model, or for
a plan without GPUs those where one NUMA node has its memory free (`cell_memory_room`; kept
sorted, so the rest is never looked at), GPU hosts waiting unscored behind GPU-less ones (not
even listed one by one until the best rank reaches the lowest floor a GPU host can have).
Under pack and spread, whose ranks of GPU-less hosts rise with (fall with) their free cores
(`cores_floor`, `cores_order`), the GPU-less ones are not even looked at one by one on that
first call: they are read in that order from lists kept sorted by free cores (one per class
of cell memory room and threads per core, merged on their floors: the classes without room
for the memory are not read), skipped where no node has room (`cell_rooms`), and scored only
until the best rank found beats the floor of the next; so are, after them, the GPU hosts with
a node without free GPUs (on the rooms of those nodes alone; pack orders them by free GPUs,
then free cores: `order_floor`), each waiting on its own floor where that is higher, the other
GPU hosts waiting as one block on the next preference (OTHER_GPU_HOSTS_FLOOR) (spread and pack
read a GPU plan's hosts the same way, kept sorted per model on `gpu_floor`: spread's free GPUs
and cores, pack's fragmentation); later calls read MAX_LAG more each, so the request soon
ranks them all (scored as they change, not in a burst when the best rank reaches many shapes
tied on cores).

Scoring is lazy, so that no work is spent on shapes that vanish before anyone asks:
- new shapes are logged per region and scored for a request when that request comes next,
  or once it lags MAX_LAG shapes behind (no decision pays for a long backlog; the limits of
  the requests are staggered, so one change does not make every heap catch up at once);
- a shape whose cheap rank floor (`numa_floors.rank_floor`: preference, fewest nodes and their
  least distance, under spread a GPU host's free GPUs and cores; for a plan without GPUs on a
  GPU host also pack's or spread's first costs) is already worse than the best rank in the
  heap waits unscored in a second heap, and is scored once the best rank reaches its floor.
  A standard plan thus never scores GPU hosts while GPU-less hosts have room, and on GPU
  hosts (where a score costs `keeps_gpu_sales`' fills) scores one where no node without free
  GPUs has room only when no such node takes it elsewhere, under pack one with more free GPUs
  than the best only when the best has as many, and under pack and spread one tied with the
  best on free cores only when the cores of its nodes without free GPUs tie too. A new
  request's GPU hosts wait on the lowest floor a GPU host can have, and get their own when
  the best rank reaches it.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Iterable, Iterator
from dataclasses import fields
from itertools import chain, count, islice

from gpucloud.domain.numa_fit import (
    ACTIVE,
    CPU_HOST,
    GPU_HOST_NODE_WITH_GPUS,
    GPU_HOST_NODE_WITHOUT_GPUS,
    Assignment,
    HostShape,
    Need,
    Part,
    choose,
    may_fit,
)
from gpucloud.domain.numa_floors import (
    cell_memory_room,
    cell_rooms,
    cores_order,
    cores_rank,
    gpu_floor,
    node_takes,
    order_floor,
    plan_floor,
    rank_floor,
    rules_rank,
    split_floor,
)
from gpucloud.domain.placement import (
    HostState,
    NoRoom,
    Placement,
    PlacementConfig,
    PlacementRequest,
    apply,
    draw,
    materialise,
    no_room,
    place_pinned,
    pool_of,
    pools,
    release,
)

MAX_LAG = 8
PENDING_CHUNK = 64
# first-fit, while a first ranking left GPU hosts pending: the lowest ids of a decision's pool it
# tries before ranking them all (`_lowest`)
LOWEST_TRIES = 64

Key = tuple[str, Need]
Rooms = tuple[tuple[int, int, int], ...]
# A live active shape: (cell memory room, order, shape, `cell_rooms`, its bucket, its ranks by
# request for first-fit and random), the parts a first ranking reads kept together, so that it
# reads thousands of them without looking each up.
Entry = tuple[int, int, HostShape, Rooms, list[int], dict[int, tuple]]
# pack, spread: a shape in its list of `_by_cores`: (cores_order, order, memory room, rooms, shape)
CoresItem = tuple[tuple[int, int], int, int, Rooms, HostShape]
# Where GPU hosts wait, without a look at each, for a plan without GPUs: the lowest preference
# a GPU host can have (each gets its own floor, `rank_floor`, once the best rank reaches it).
GPU_HOSTS_FLOOR = (GPU_HOST_NODE_WITHOUT_GPUS,)
# Where they wait when those with a node without free GPUs that has room for the plan are read
# otherwise (pack's and spread's first ranking, `_by_cores`): the others rank no better.
OTHER_GPU_HOSTS_FLOOR = (GPU_HOST_NODE_WITH_GPUS,)
# What a host state holds besides its generation: a new state whose fields are these very
# objects (the store's generation after a claim the fleet applied) has the same shape.
_RESOURCES = tuple(f.name for f in fields(HostState) if f.name != "generation")


# pack and spread keep beside each rank the assignment found, so a decision does not score its
# host again; as one flat tuple of numbers and strings, which the garbage collector stops
# tracking (named tuples it tracks for ever): a heap entry per request and shape scored.
Kept = tuple


def _kept(a: Assignment) -> Kept:
    return (a.model, a.unknown_gpus, *(field for part in a.parts for field in part))


def _assignment(kept: Kept) -> Assignment:
    size = len(Part._fields)
    return Assignment(kept[0], tuple(Part(*kept[i : i + size]) for i in range(2, len(kept), size)), kept[1])


def _models(shape: HostShape) -> set[str]:
    """The GPU models whose plans the shape may take (`may_fit`)."""
    return {m for n in shape.nodes for m, _ in n.gpus} | {m for m, _ in shape.unknown_gpus}


def _pools(shape: HostShape) -> list[tuple[str, str | None]]:
    """The pools of `random`'s tries a host of this shape is in (`placement.pools`), per region."""
    return [(shape.region, pool) for pool in pools(shape)]


class Fleet:
    """An indexed, mutable set of host states with `place`, `apply` and `release`."""

    def __init__(self, hosts: Iterable[HostState] = (), config: PlacementConfig | None = None):
        self.config = config or PlacementConfig()
        self._hosts: dict[int, HostState] = {}
        # `random`'s pools (`placement.tried`): per region, the ids of every host (None), of the
        # hosts with GPUs of a model installed (the model) and of the CPU-only ones (""), sorted
        self._pools: dict[tuple[str, str | None], list[int]] = {}
        self._shape_of: dict[int, HostShape] = {}
        self._buckets: dict[HostShape, list[int]] = {}  # shape -> sorted host ids
        self._shapes: dict[str, set[HostShape]] = {}  # region -> shapes that have hosts
        # the live active shapes that may take a request, for a new request's first ranking:
        # per region and GPU model, those with free GPUs of it (their entries by shape, so that it
        # reads them without hashing each: a cold shape costs ~2 us); per region and "has GPUs", all,
        # as their entries sorted by cell memory room
        self._models: dict[str, dict[str, dict[HostShape, Entry]]] = {}
        self._roomy: dict[tuple[str, bool], list[Entry]] = {}
        self._entry: dict[HostShape, Entry] = {}
        # pack, spread: a request's first ranking reads hosts as their floors rise (`_by_cores`, `_by_gpus`)
        self._floors_first = self.config.policy in ("pack", "spread")
        # pack, spread: per region, kind (CPU_HOST: the GPU-less shapes; GPU_HOST_NODE_WITHOUT_GPUS:
        # the GPU shapes with a node without free GPUs, of which alone the rooms are kept), class of
        # those nodes' memory room (its bit length, so a request reads only the classes that may
        # hold its memory) and threads per core (within one, the floors rise with `cores_order`),
        # the active shapes as (cores_order, order, memory room, rooms, shape) sorted; per request
        # without GPUs, what of them is left to read, merged in the order of their floors
        self._by_cores: dict[str, dict[tuple[int, int, int], list[CoresItem]]] = {}
        self._cores_of: dict[HostShape, tuple[tuple[int, int, int], tuple[tuple[int, int], int]]] = {}
        self._unread: dict[Key, list] = {}  # [the classes' entries merged, (floor, shape) read next]
        # spread and pack, whose floors for GPU plans tell hosts apart (`gpu_floor`): per region
        # and GPU model, and threads per core (pack's floors subtract the cores a plan takes, which
        # depend on it), the shapes that may take its plans as (floor, order, shape) sorted; a GPU
        # plan's first ranking reads them in the order of its floors (`_plan_floors`, `_unread`)
        self._by_gpus: dict[tuple[str, str], dict[int, list[tuple[tuple, int, HostShape]]]] = {}
        self._gpus_of: dict[HostShape, list[tuple[tuple[str, str], tuple[tuple, int]]]] = {}
        self._heaps: dict[Key, list] = {}  # (rank, order, shape, kept assignment or None: not kept)
        self._waiting: dict[Key, list] = {}  # (rank floor, order, shape, floor its own), not scored yet
        self._queued: dict[Key, set[HostShape]] = {}  # shapes in either heap
        # per request without GPUs, the GPU hosts with room not looked at yet, and the floor they
        # wait on (`GPU_HOSTS_FLOOR`, `OTHER_GPU_HOSTS_FLOOR`)
        self._deferred: dict[Key, tuple[tuple, list[Entry]]] = {}
        self._needs: dict[str, list[Need]] = {}  # region -> requests seen, whose heaps exist
        self._log: dict[str, list[HostShape]] = {}  # region -> shapes in the order their buckets appeared
        self._read: dict[Key, int] = {}  # how far each request's heap has read the log
        self._order = count()
        # first-fit and random: per request and rank, the sorted ids of the hosts whose shape
        # is scored on that rank; per live active shape, its rank for each request it is scored
        # for, by the request's number (their heaps stay empty)
        self._by_rank = self.config.policy in ("first-fit", "random")
        self._members: dict[Key, dict[tuple, list[int]]] = {}
        self._ranks: dict[HostShape, dict[int, tuple]] = {}
        self._host_ranks: dict[int, dict[int, tuple] | None] = {}  # host id -> its shape's (None: not active)
        self._number: dict[Key, int] = {}
        # random, and first-fit's plans without GPUs: once a first ranking found a host on the
        # lowest rank, [the other entries, the position of the next to rank, that rank], ranked
        # a chunk per later call; draws and first-fit's lowest id tell a host on that rank from
        # its shape meanwhile (`_on_best`, `_lowest`; on CPU-only hosts, first-fit from their rooms)
        self._pending: dict[Key, list] = {}
        # the draw under way, (request, best rank), and what it calls, bound once: a decision
        # allocates no closures (they moved the collector's pauses into decisions)
        self._drawing: tuple[Key, tuple] = (("", Need(0, None, 1, 1, False)), ())
        self._drawn_tied, self._drawn_listed = self._tried_is_tied, self._listed_now
        self._keys: list[Key] = []  # by number
        self._members_of: list[dict[tuple, list[int]]] = []  # by the request's number
        for host in hosts:
            self.update(host)

    def __len__(self) -> int:
        return len(self._hosts)

    def host(self, host_id: int) -> HostState:
        return self._hosts[host_id]

    def hosts(self) -> list[HostState]:
        return [self._hosts[i] for i in sorted(self._hosts)]

    # --- keeping the index -----------------------------------------------------------------

    def update(self, host: HostState) -> None:
        """Add a host or replace its state (e.g. after the store reloaded it)."""
        old = self._hosts.get(host.id)
        if old is not None and (all(getattr(old, f) is getattr(host, f) for f in _RESOURCES)
                                or self._shape_of[host.id] == host.shape):  # e.g. a new generation only
            self._hosts[host.id] = host
            return
        shape = host.shape
        if old is not None:
            before = self._shape_of[host.id]
            self._unindex(host.id)
            if before.region != shape.region or before.installed != shape.installed:
                self._unpool(host.id, before)
        if old is None or before.region != shape.region or before.installed != shape.installed:
            for pool in _pools(shape):
                insort(self._pools.setdefault(pool, []), host.id)
        self._hosts[host.id] = host
        self._shape_of[host.id] = shape
        self._index(host.id)

    def remove(self, host_id: int) -> None:
        self._unindex(host_id)
        self._unpool(host_id, self._shape_of[host_id])
        del self._hosts[host_id], self._shape_of[host_id], self._host_ranks[host_id]

    def _unpool(self, host_id: int, shape: HostShape) -> None:
        for pool in _pools(shape):
            ids = self._pools[pool]
            del ids[bisect_left(ids, host_id)]

    def _index(self, host_id: int) -> None:
        shape = self._shape_of[host_id]
        bucket = self._buckets.get(shape)
        new = bucket is None
        if bucket is None:
            bucket = self._buckets[shape] = []
            self._shapes.setdefault(shape.region, set()).add(shape)
            if shape.status == ACTIVE:
                rooms = cell_rooms(shape, self.config.for_host(shape))
                ranks = self._ranks[shape] = {}
                entry = self._entry[shape] = (cell_memory_room(shape), next(self._order), shape, rooms, bucket, ranks)
                insort(self._roomy.setdefault((shape.region, bool(shape.installed)), []), entry)
                models = self._models.setdefault(shape.region, {})
                for model in _models(shape):
                    models.setdefault(model, {})[shape] = entry
                    if self._floors_first:
                        floor = (gpu_floor(shape, model, self.config.for_host(shape)), next(self._order))
                        by_gpus = self._by_gpus.setdefault((shape.region, model), {})
                        insort(by_gpus.setdefault(shape.threads_per_core, []), (*floor, shape))
                        self._gpus_of.setdefault(shape, []).append(((shape.region, model), floor))
                if self._floors_first:
                    self._index_cores(shape, rooms)
        insort(bucket, host_id)
        self._host_ranks[host_id] = self._ranks.get(shape)
        if self._by_rank:
            for number, rank in self._ranks.get(shape, {}).items():
                insort(self._members_of[number][rank], host_id)
        if new:
            log = self._log.setdefault(shape.region, [])
            log.append(shape)
            for i, need in enumerate(self._needs.get(shape.region, ())):
                if len(log) - self._read[(shape.region, need)] >= MAX_LAG + i % MAX_LAG:
                    self._catch_up((shape.region, need))

    def _unindex(self, host_id: int) -> None:
        shape = self._shape_of[host_id]
        bucket = self._buckets[shape]
        del bucket[bisect_left(bucket, host_id)]
        if self._by_rank:
            for number, rank in self._ranks.get(shape, {}).items():
                ids = self._members_of[number][rank]
                del ids[bisect_left(ids, host_id)]
        if not bucket:
            del self._buckets[shape]
            for number in self._ranks.pop(shape, {}):  # forgotten now, scored again if it comes back
                self._queued[self._keys[number]].discard(shape)
            self._shapes[shape.region].discard(shape)
            if shape.status == ACTIVE:
                models = self._models[shape.region]
                for model in _models(shape):
                    del models[model][shape]
                for where, floor in self._gpus_of.pop(shape, ()):
                    by_gpus = self._by_gpus[where][shape.threads_per_core]
                    del by_gpus[bisect_left(by_gpus, floor)]
                roomy = self._roomy[(shape.region, bool(shape.installed))]
                room = self._entry.pop(shape)[:2]
                del roomy[bisect_left(roomy, room)]
                if shape in self._cores_of:
                    kind, item = self._cores_of.pop(shape)
                    by_cores = self._by_cores[shape.region][kind]
                    del by_cores[bisect_left(by_cores, item)]

    def _index_cores(self, shape: HostShape, rooms: Rooms) -> None:
        """pack, spread: the shape joins its list in `_by_cores` (a GPU shape only with a node
        without free GPUs: elsewhere a plan without GPUs ranks GPU_HOST_NODE_WITH_GPUS or worse)."""
        kind = GPU_HOST_NODE_WITHOUT_GPUS if shape.installed else CPU_HOST
        if shape.installed:
            rooms = tuple(room for room, node in zip(rooms, shape.nodes, strict=True) if not node.gpus)
        if not rooms:
            return
        most = max(room[0] for room in rooms)
        where = (kind, most.bit_length(), shape.threads_per_core)
        item = self._cores_of[shape] = where, (cores_order(shape, self.config.for_host(shape)), next(self._order))
        insort(self._by_cores.setdefault(shape.region, {}).setdefault(where, []), (*item[1], most, rooms, shape))

    def warm(self, region: str) -> None:
        """Rank the region's hosts now for the requests of every plan of the config, and find
        each one's best rank as its first decision would (on GPU hosts only, that lists the
        GPU hosts a plan without GPUs defers and floors each: 2-6 ms per plan at 10,000 hosts)."""
        for plan in self.config.plans:
            key = (region, PlacementRequest.for_plan(plan, region).need)
            self._heap(*key, lazy=False)
            self._best_rank(key)

    def _seen(self, key: Key, shape: HostShape) -> bool:
        """Whether the shape waits or is scored for the request already."""
        return shape in self._queued[key] or self._number[key] in self._ranks.get(shape, ())

    def _queue(self, key: Key, shape: HostShape) -> None:
        queued = self._queued[key]
        if self._seen(key, shape) or not may_fit(shape, key[1]):
            return
        queued.add(shape)
        best = self._top(key)
        # pack's floor of its costs orders a first ranking (`_plan_floors`); a shape waiting on it
        # is scored by the decision that lifts the best rank past it (bursts of up to ~20 in the
        # bench's churn), not as it comes (mostly in upkeep): its span and distance alone (no costs)
        costs = () if key[1].gpus and self.config.policy == "pack" else None
        floor = rank_floor(shape, key[1], self.config.for_host(shape), self._entry[shape][3], costs)
        if best is not None and floor > best[: len(floor)]:
            heapq.heappush(self._waiting[key], (floor, next(self._order), shape, True))
        else:
            self._score(key, shape)

    def _score(self, key: Key, shape: HostShape) -> None:
        # Not the memoised `best_fit`: the heap keeps the rank, and a memo of every shape ever
        # seen would only grow (and slow the garbage collector) in a long-running process.
        need = key[1]
        if self._by_rank:
            rank = rules_rank(shape, self._entry[shape][3], need, self.config.for_host(shape))
            if rank is None and (need.gpus or shape.installed):  # maybe across nodes, or on a worse preference
                fit = choose(shape, need, self.config.for_host(shape))
                rank = fit.rank if fit is not None else None
            if rank is None:
                self._queued[key].discard(shape)
            else:
                self._rank(key, shape, rank)
            return
        if not need.gpus and not shape.installed:  # pack, spread: its rank from its rooms (`cores_rank`)
            rank = cores_rank(shape, self._entry[shape][3], need, self.config.for_host(shape))
            if rank is None:
                self._queued[key].discard(shape)
            else:
                heapq.heappush(self._heaps[key], (rank, next(self._order), shape, None))
            return
        fit = choose(shape, need, self.config.for_host(shape))
        if fit is None:
            self._queued[key].discard(shape)
        else:
            heapq.heappush(self._heaps[key], (fit.rank, next(self._order), shape, _kept(fit.assignment)))

    def _rank(self, key: Key, shape: HostShape, rank: tuple) -> None:
        """first-fit, random: the shape's hosts join the request's ids on that rank."""
        number = self._number[key]
        self._ranks[shape][number] = rank
        ids = self._members_of[number].setdefault(rank, [])
        bucket = self._buckets[shape]
        if len(bucket) < 8:
            for host_id in bucket:
                insort(ids, host_id)
        else:
            ids.extend(bucket)
            ids.sort()  # two sorted runs: merged in linear time

    def _rank_at_once(self, key: Key, entries: Iterable[Entry]) -> None:
        """first-fit, random, a request's first ranking: the shapes whose rank the rules settle
        (`rules_rank`) join its ids at once, each id list sorted once at the end; the others
        (GPU plans across nodes, plans without GPUs on GPU hosts where one node has room) wait
        on their floors or are scored."""
        need, number, members = key[1], self._number[key], self._members[key]
        ids: list[int] = []
        last, rest = None, []
        for _, _, shape, rooms, bucket, ranks in entries:
            rank = rules_rank(shape, rooms, need, self.config.for_host(shape))
            if rank is None:
                if need.gpus or (shape.installed and node_takes(rooms, need)):
                    rest.append((shape, rooms))
                continue  # a plan without GPUs: no node has room for it, so it fits nowhere here
            if rank != last:
                ids, last = members.setdefault(rank, []), rank
            ranks[number] = rank
            ids += bucket
        for ids in members.values():
            ids.sort()
        # new to the request, so queued without `_queue`'s checks
        best, waiting, queued = self._top(key), self._waiting[key], self._queued[key]
        for shape, rooms in rest:
            if shape not in self._buckets or self._seen(key, shape):  # a pending entry, gone or queued since
                continue
            floor = rank_floor(shape, need, self.config.for_host(shape), rooms)
            queued.add(shape)
            if best is not None and floor > best[: len(floor)]:
                waiting.append((floor, next(self._order), shape, True))
            else:
                self._score(key, shape)
                best = self._top(key)
        heapq.heapify(waiting)

    def _top(self, key: Key) -> tuple | None:
        """The best rank scored for the request (pack, spread: maybe of a shape gone since)."""
        if self._by_rank:
            return min((rank for rank, ids in self._members[key].items() if ids), default=None)
        heap = self._heaps[key]
        return heap[0][0] if heap else None

    def _heap(self, region: str, need: Need, *, lazy: bool = True) -> list:
        """The heap for this request, brought up to date with the shapes logged since last time
        (built when new: `lazy`, for a first decision, reads GPU-less shapes as needed)."""
        key = (region, need)
        heap = self._heaps.get(key)
        if heap is not None:
            self._catch_up(key)
            return heap
        heap = self._heaps[key] = []
        self._waiting[key] = []
        self._queued[key] = set()
        members = self._members[key] = {}
        self._number[key] = len(self._keys)
        self._keys.append(key)
        self._members_of.append(members)
        self._needs.setdefault(region, []).append(need)
        self._read[key] = len(self._log.setdefault(region, []))
        if need.gpus:
            shapes = self._models.get(region, {}).get(need.gpu_model or "", {})
            if self._by_rank and self.config.policy == "random" and lazy:
                entries = list(shapes.values())
                if not self._rank_first(key, entries) and not self._rank_first_split(key, entries):
                    self._rank_at_once(key, entries)  # none on the lowest rank there is: every one now
            elif self._by_rank:
                self._rank_at_once(key, list(shapes.values()))
            elif self._floors_first and lazy:  # read as their floors rise (`_next_unread`)
                per_tpc = self._by_gpus.get((region, need.gpu_model or ""), {}).values()
                self._unread[key] = [heapq.merge(*(self._plan_floors(entries[:], need) for entries in per_tpc)), None]
            else:
                for shape in shapes:
                    self._queue(key, shape)
            return heap
        # first-fit, random: the CPU-only hosts, and where none takes the plan (a fleet of GPU
        # hosts only) the GPU hosts, none deferred: one on the lowest rank there is ranked, the
        # others pending (first-fit then looks for a lower id among them: `_lowest`). First-fit
        # ranks the CPU-only host of the lowest id on it (`_rank_lowest_first`)
        if self._by_rank and lazy:
            cpu_hosts = self._with_room(region, False, need.memory_mib)
            if self.config.policy == "first-fit":
                found = self._rank_lowest_first(key, cpu_hosts)
            else:
                found = self._rank_first(key, cpu_hosts)
            if not found:
                gpu_hosts = self._with_room(region, True, need.memory_mib)
                if not self._rank_first(key, gpu_hosts):
                    self._rank_at_once(key, gpu_hosts)
                return heap
        elif self._by_rank:
            self._rank_at_once(key, self._with_room(region, False, need.memory_mib))
        elif self._floors_first and lazy:  # read in rank order as decisions need them (`_next_unread`)
            smallest = need.memory_mib.bit_length()
            lists = [(kind, tpc, items) for (kind, room, tpc), items in self._by_cores.get(region, {}).items()
                     if room >= smallest]
            # the CPU-only hosts' lists first (their floors are all lower): the GPU hosts' are not
            # opened (a look at each list's first entries with room) while any of those is left
            self._unread[key] = [chain.from_iterable(
                heapq.merge(*(self._cores_floors(items[:], kind, tpc, need) for kind, tpc, items in lists
                              if kind == first)) for first in (CPU_HOST, GPU_HOST_NODE_WITHOUT_GPUS)), None]
        else:
            for entry in self._with_room(region, False, need.memory_mib):
                self._queue(key, entry[2])
        # Every GPU host waits, without a look at each, on GPU_HOSTS_FLOOR until the best rank
        # reaches it (`_best_rank`): then each gets its own floor. Where those with a node without
        # free GPUs with room are read with the GPU-less ones, the others wait on the next floor.
        gpu_hosts = self._with_room(region, True, need.memory_mib)
        if gpu_hosts:
            self._deferred[key] = (OTHER_GPU_HOSTS_FLOOR if key in self._unread else GPU_HOSTS_FLOOR), gpu_hosts
        return heap

    def _rank_first(self, key: Key, entries: list[Entry]) -> bool:
        """random, and first-fit's plans without GPUs on GPU hosts, a first ranking: rank the first entry
        one node of which takes the request whole (`rules_rank`) and leave the others pending
        (ranked `PENDING_CHUNK` a call later on): among `entries` (for a plan without GPUs,
        CPU-only or, when none of those takes it, GPU hosts) that rank is the lowest there is,
        so it is the best, and `_on_best` tells which other hosts share it without ranking
        them. False: no such entry, nothing ranked (a GPU plan or a GPU host may still take it
        otherwise: `_rank_at_once`, which ranks by the rules too where two nodes take a GPU plan)."""
        need = key[1]
        for position, (_, _, shape, rooms, _, _) in enumerate(entries):
            rank = rules_rank(shape, rooms, need, self.config.for_host(shape), spans=1)
            if rank is not None:
                self._rank_at_once(key, entries[position : position + 1])
                self._pending[key] = [entries[:position] + entries[position + 1 :], 0, rank]
                return True
        return False

    def _rank_lowest_first(self, key: Key, cpu_hosts: list[Entry]) -> bool:
        """first-fit, a plan without GPUs, a first ranking on CPU-only hosts: every one a node of
        which takes the plan ranks the lowest rank there is (`rules_rank`), so its answer is the
        lowest id among them; rank the entry that holds it and leave the others pending, as
        `_rank_first` does (`_lowest` reads their lowest ids). Their order of memory room tells
        nothing of their ids (and the lowest ids are full where first-fit filled them): each
        entry's lowest id is compared, `node_takes` asked only of one below the lowest so far.
        False: no CPU-only host takes it, nothing ranked."""
        need, lowest, at = key[1], None, 0
        for position, (_, _, _, rooms, bucket, _) in enumerate(cpu_hosts):
            if (lowest is None or bucket[0] < lowest) and node_takes(rooms, need):
                lowest, at = bucket[0], position
        if lowest is None:
            return False
        self._rank_at_once(key, cpu_hosts[at : at + 1])
        self._pending[key] = [cpu_hosts[:at] + cpu_hosts[at + 1 :], 0, self._top(key)]
        return True

    def _rank_first_split(self, key: Key, entries: list[Entry]) -> bool:
        """random, a GPU plan's first ranking where no node of any entry takes it whole
        (`_rank_first` found none): no host ranks below two nodes at the least distance of any
        two holding its GPUs (`split_floor`), so the first entry the rules rank there is the
        best, and the others are left pending as `_rank_first` leaves them. False: no entry
        ranks there, nothing ranked."""
        need = key[1]
        floors = [split_floor(shape, need) for _, _, shape, _, _, _ in entries]
        least = min((floor for floor in floors if floor is not None), default=None)
        if least is None:
            return False
        lowest = (0, 2, least, ())
        for position, ((_, _, shape, rooms, _, _), floor) in enumerate(zip(entries, floors, strict=True)):
            if floor == least and rules_rank(shape, rooms, need, self.config.for_host(shape)) == lowest:
                self._rank_at_once(key, entries[position : position + 1])
                self._pending[key] = [entries[:position] + entries[position + 1 :], 0, lowest]
                return True
        return False

    def _rank_pending(self, key: Key, count: int | None = None) -> None:
        """Rank `count` more of the entries a first ranking left pending (None: all of them)."""
        entries, position, _ = pending = self._pending[key]
        end = len(entries) if count is None else position + count
        self._rank_at_once(key, entries[position:end])
        if end >= len(entries):
            del self._pending[key]
        else:
            pending[1] = end

    def _tried_is_tied(self, host_id: int) -> bool:
        """`draw`'s `tied` for the draw under way."""
        return self._on_best(self._drawing[0], host_id, self._drawing[1])

    def _on_best(self, key: Key, host_id: int, rank: tuple) -> bool:
        """Whether the host is on the request's best rank (`rank`), known from its shape."""
        ranks = self._host_ranks[host_id]
        if ranks is None:  # not active
            return False
        mine = ranks.get(self._number[key])
        if mine is not None:
            return mine == rank
        shape = self._shape_of[host_id]
        if key in self._pending:  # maybe pending (the lowest rank there is: `rules_rank` knows it)
            return rules_rank(shape, self._entry[shape][3], key[1], self.config.for_host(shape), rank[1]) == rank
        return False  # waiting on a floor above the best rank, or no fit

    def _with_room(self, region: str, gpus: bool, memory_mib: int) -> list[Entry]:
        """The entries of the active shapes, with or without GPUs installed, where a node has
        `memory_mib` free (a copy: the index's list changes as hosts do)."""
        roomy = self._roomy.get((region, gpus), [])
        return roomy[bisect_left(roomy, (memory_mib,)) :]

    def _wait_gpu_hosts(self, key: Key) -> None:
        """The GPU hosts deferred for a plan without GPUs wait now, on the floor they were deferred on."""
        waiting, queued = self._waiting[key], self._queued[key]
        floor, entries = self._deferred.pop(key)
        for entry in entries:
            shape = entry[2]
            if shape in self._buckets and not self._seen(key, shape):
                waiting.append((floor, next(self._order), shape, False))
                queued.add(shape)
        heapq.heapify(waiting)

    def _catch_up(self, key: Key) -> None:
        region = key[0]
        log = self._log[region]
        for shape in log[self._read[key] :]:
            if shape in self._buckets:
                self._queue(key, shape)
        self._read[key] = len(log)
        if key in self._pending:
            self._rank_pending(key, PENDING_CHUNK)
        if key in self._unread:  # a first ranking left unread: read some more
            best = self._top(key)
            for _ in range(MAX_LAG):
                unread = self._next_unread(key)
                # not the GPU hosts while a CPU-only one ranks best (`_best_rank` reads them if
                # it needs them): they would be read only to wait on their floors
                if unread is None or (best is not None and unread[0][:1] > best[:1]):
                    break
                self._unread[key][1] = None
                self._queue(key, unread[1])
        live = len(self._shapes.get(region, ()))
        if len(log) > 2 * live + 1024:
            self._compact(region)
        if len(self._heaps[key]) + len(self._waiting[key]) > 2 * live + 1024:
            self._prune(key)

    def _prune(self, key: Key) -> None:
        """Drop heap entries of shapes that no host has any more."""
        for heap in (self._heaps[key], self._waiting[key]):
            gone = {entry[2] for entry in heap if entry[2] not in self._buckets}
            if gone:
                heap[:] = [entry for entry in heap if entry[2] not in gone]
                heapq.heapify(heap)
                self._queued[key] -= gone

    def _compact(self, region: str) -> None:
        """Drop log entries every heap has read, or whose shape is gone."""
        log = self._log[region]
        keys = [(region, need) for need in self._needs.get(region, ())]
        done = min((self._read[k] for k in keys), default=len(log))
        kept, live_before = [], [0]  # live_before[i]: live entries in log[done : done + i]
        for shape in log[done:]:
            if shape in self._buckets:
                kept.append(shape)
            live_before.append(len(kept))
        for k in keys:
            self._read[k] = live_before[self._read[k] - done]
        self._log[region] = kept

    def _best_rank(self, key: Key) -> tuple | None:
        """The best rank a live shape holds (waiting shapes scored as needed); None: no fit."""
        heap, waiting, queued = self._heaps[key], self._waiting[key], self._queued[key]
        if key in self._pending and not self._members[key].get(self._pending[key][2]):
            self._rank_pending(key)  # the hosts of the one ranked on the lowest rank are gone
        while True:
            while heap and heap[0][2] not in self._buckets:
                queued.discard(heapq.heappop(heap)[2])  # its hosts all changed shape since
            while waiting and waiting[0][2] not in self._buckets:
                queued.discard(heapq.heappop(waiting)[2])
            best = self._top(key)
            unread = self._next_unread(key)
            from_waiting = bool(waiting) and (unread is None or waiting[0][0] <= unread[0])
            if from_waiting:
                floor, _, shape, own_floor = waiting[0]
            elif unread is not None:
                floor, shape = unread
            deferred = self._deferred.get(key)
            if deferred is not None and (not (waiting or unread) or floor > deferred[0]):
                if best is None or best[:1] >= deferred[0]:  # the GPU hosts come next
                    self._wait_gpu_hosts(key)
                    continue
                return best
            if not (waiting or unread):
                return best
            if best is not None and floor > best[: len(floor)]:
                return best
            if from_waiting:
                heapq.heappop(waiting)
                if not own_floor:  # its own floor, with the rules' span and distance on 1-2 nodes
                    costs = floor[3:] if key[1].gpus else None  # a GPU plan's: its list's (kept above)
                    floor = rank_floor(shape, key[1], self.config.for_host(shape), self._entry[shape][3], costs)
                    heapq.heappush(waiting, (floor, next(self._order), shape, True))
                    continue
            else:
                self._unread[key][1] = None
                queued.add(shape)
                if key[1].gpus or shape.installed:  # on its list's floor: wait on its own if that is higher
                    # a GPU plan's from its GPU counts first, its costs' floor the list's (`_plan_floors`):
                    # above the list's, the rules' span and distance (`rules_rank` on two nodes, ~5 us)
                    # wait until it comes up (most never do: h100 plans over two nodes read every h100
                    # host before the first one comes up)
                    cfg = self.config.for_host(shape)
                    if key[1].gpus:
                        own, settled = rank_floor(shape, key[1], cfg, costs=floor[3:]), False
                        if own <= floor:
                            own, settled = rank_floor(shape, key[1], cfg, self._entry[shape][3], floor[3:]), True
                    else:
                        own, settled = rank_floor(shape, key[1], cfg), True
                    if own > floor:
                        heapq.heappush(waiting, (own, next(self._order), shape, settled))
                        continue
            self._score(key, shape)

    def _cores_floors(self, items: list[CoresItem], kind: int, tpc: int, need: Need
                      ) -> Iterator[tuple[tuple, int, HostShape]]:
        """(floor, order, shape) of the shapes of one list of `_by_cores` where a node (of a GPU
        shape, one without free GPUs) has room for the plan (`node_takes`), in their order: the
        floor `order_floor` gives `kind` on their `cores_order`, `cores_floor` on a GPU-less
        shape, below it on a GPU shape (short of that node's cores, or GPU_HOST_NODE_WITH_GPUS
        where such a node's fill would cost GPU sales)."""
        memory = need.memory_mib
        for cores, order, most_memory, rooms, shape in items:
            if most_memory >= memory and node_takes(rooms, need):
                yield order_floor(kind, cores, tpc, need, self.config), order, shape

    def _plan_floors(self, entries: list, need: Need) -> Iterator[tuple[tuple, int, HostShape]]:
        """(floor, order, shape) of the GPU plan on the shapes of `entries` (one threads per
        core) holding enough GPUs for it (`may_fit`), in their order (`plan_floor` takes the
        same cores off each)."""
        for floor, order, shape in entries:
            if may_fit(shape, need):  # enough GPUs of the model (else `choose` finds none)
                yield plan_floor(floor, shape, need, self.config.for_host(shape)), order, shape

    def _next_unread(self, key: Key) -> tuple[tuple, HostShape] | None:
        """(floor, shape): the next shape of a request's first ranking still to read that may
        take it (live, not queued since), for a GPU plan on its model's floor for the plan
        (`_plan_floors`), for a plan without GPUs on its own (`_cores_floors`)."""
        unread = self._unread.get(key)
        if unread is None:
            return None
        entries, peeked = unread
        queued = self._queued[key]
        if peeked is not None and peeked[1] in self._buckets and peeked[1] not in queued:
            return peeked
        for floor, _, shape in entries:
            if shape in self._buckets and shape not in queued:
                unread[1] = floor, shape
                return unread[1]
        del self._unread[key]
        return None

    def _tied(self, key: Key) -> list[tuple]:
        """pack and spread: the heap entries of the live shapes on the best rank (`_best_rank` first)."""
        heap = self._heaps[key]
        tied: list = []
        while heap and (not tied or heap[0][0] == tied[0][0]):
            entry = heapq.heappop(heap)
            if entry[2] in self._buckets:
                tied.append(entry)
            else:
                self._queued[key].discard(entry[2])
        for entry in tied:
            heapq.heappush(heap, entry)
        return tied

    # --- decisions -------------------------------------------------------------------------

    def place(self, request: PlacementRequest) -> Placement | NoRoom:
        """What `placement.place(request, self.hosts(), self.config)` answers, found faster."""
        if request.host_id is not None:
            host = self._hosts.get(request.host_id)
            candidates = [host] if host is not None and host.region == request.region else []
            return place_pinned(request, candidates, self.config)
        key = (request.region, request.need)
        self._heap(*key)
        rank = self._best_rank(key)
        if rank is None:
            # A GPU plan's reason reads only the shapes with GPUs of its model, and when some are
            # active with free ones, the others change nothing in it: the rest is not looked at.
            models = self._models.get(request.region, {})
            shapes = models.get(request.gpu_model or "", {}).keys() if request.gpus else set()
            if not shapes:
                shapes = self._shapes.get(request.region, set())
            return no_room(request, {s: len(self._buckets[s]) for s in shapes}, self.config)
        kept: Kept | None = None
        if self._by_rank:
            ids = self._members[key][rank]
            if self.config.policy == "first-fit":
                host = self._hosts[ids[0] if key not in self._pending else self._lowest(key, rank)]
            else:
                pool = self._pools[(request.region, pool_of(key[1], rank))]
                self._drawing = (key, rank)
                host = self._hosts[draw(self.config, pool, self._drawn_tied, self._drawn_listed)]
        else:
            host_id, kept = min((self._buckets[entry[2]][0], entry[3]) for entry in self._tied(key))
            host = self._hosts[host_id]
        if kept is not None:
            return materialise(host, _assignment(kept), request)
        # the fit of the host taken found now: first-fit and random keep none (thousands of hosts
        # tie on a rank, all ranked by a new request's first call), pack and spread none for a
        # shape ranked without a score (`cores_rank`)
        fit = choose(self._shape_of[host.id], key[1], self.config.for_host(host))
        if fit is None:
            raise RuntimeError(f"host {host.id} ranked best for {key} but has no fit for it")
        return materialise(host, fit.assignment, request)

    def _lowest(self, key: Key, rank: tuple) -> int:
        """first-fit while a first ranking left hosts pending: the lowest id on the best rank,
        the ranked hosts' lowest or a lower one. On CPU-only hosts (`_rank_lowest_first`), a
        pending entry's lowest id where a node takes the plan (it is then on that rank). On GPU
        hosts, one told from its shape (`_on_best`), trying the hosts of the region that may be
        on it (`pool_of`) in id order; past LOWEST_TRIES of them, every pending entry is ranked
        (the ranked hosts' lowest is then the answer). None pending is on the best rank once a
        better one than theirs is ranked (a CPU-only host freed while GPU hosts are pending)."""
        ranked = self._members[key][rank][0]
        entries, position, pending_rank = self._pending[key]
        if pending_rank != rank:
            return ranked
        pool = pool_of(key[1], rank)
        if pool == "":
            need = key[1]
            for _, _, _, rooms, bucket, _ in islice(entries, position, None):
                if bucket and bucket[0] < ranked and node_takes(rooms, need):
                    ranked = bucket[0]
            return ranked
        for host_id in islice(self._pools[(key[0], pool)], LOWEST_TRIES):
            if host_id >= ranked or self._on_best(key, host_id, rank):
                return min(host_id, ranked)
        self._rank_pending(key)
        return self._members[key][rank][0]

    def _listed_now(self) -> list[int]:
        """`draw`'s `listed` for the draw under way: the ids on its rank, every pending entry
        ranked first."""
        key, rank = self._drawing
        if key in self._pending:
            self._rank_pending(key)
        return self._members[key][rank]

    def apply(self, placement: Placement, *, staff: bool = False) -> HostState:
        host = apply(self._hosts[placement.host_id], placement, staff=staff)
        self.update(host)
        return host

    def release(self, placement: Placement) -> HostState:
        host = release(self._hosts[placement.host_id], placement)
        self.update(host)
        return host
