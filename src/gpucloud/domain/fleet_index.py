"""Placement over thousands of hosts: the same answers as `place`, without scanning every host.

Hosts are bucketed by their free shape (region, status and per-node free resources), because
hosts of one shape rank identically for every request. For each (region, request) seen, a
heap orders the buckets by rank; a decision pops the best rank, takes the lowest host id
among the buckets tied on it, and materialises the placement on that host. Only the host
that changed moves between buckets, and only a shape never seen before costs a real scoring.

The requests of the config's plans (`PlacementConfig.plans`: the catalog's, in the product)
get their heaps when the fleet loads a region (`warm`), so no decision for a plan of the
catalog ranks the whole region; a request of any other shape builds its heap on first use.

Scoring is lazy, so that no work is spent on shapes that vanish before anyone asks:
- new shapes are logged per region and scored for a request when that request comes next,
  or once it lags MAX_LAG shapes behind (no decision pays for a long backlog; the limits of
  the requests are staggered, so one change does not make every heap catch up at once);
- a shape whose cheap rank floor (`numa_fit.rank_floor`: preference, fewest nodes) is
  already worse than the best rank in the heap waits unscored in a second heap, and is scored
  once the best rank reaches its floor. A standard plan thus never scores GPU hosts while
  GPU-less hosts have room.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, insort
from collections.abc import Iterable
from itertools import count

from gpucloud.domain.numa_fit import HostShape, Need, choose, may_fit, rank_floor
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
    release,
)

MAX_LAG = 8


class Fleet:
    """An indexed, mutable set of host states with `place`, `apply` and `release`."""

    def __init__(self, hosts: Iterable[HostState] = (), config: PlacementConfig | None = None):
        self.config = config or PlacementConfig()
        self._hosts: dict[int, HostState] = {}
        self._buckets: dict[HostShape, list[int]] = {}  # shape -> sorted host ids
        self._shapes: dict[str, set[HostShape]] = {}  # region -> shapes that have hosts
        self._heaps: dict[tuple[str, Need], list] = {}  # (rank, order, shape)
        self._waiting: dict[tuple[str, Need], list] = {}  # (rank floor, order, shape), not scored yet
        self._queued: dict[tuple[str, Need], set[HostShape]] = {}  # shapes in either heap
        self._needs: dict[str, list[Need]] = {}  # region -> requests seen, whose heaps exist
        self._log: dict[str, list[HostShape]] = {}  # region -> shapes in the order their buckets appeared
        self._read: dict[tuple[str, Need], int] = {}  # how far each request's heap has read the log
        self._order = count()
        # first-fit and random rank hosts by the placement rules alone, so many shapes tie on the
        # best rank: per request, the shapes scored for each rank, to find them without the heap
        self._by_rank = self.config.policy in ("first-fit", "random")
        self._ties: dict[tuple[str, Need], dict[tuple, set[HostShape]]] = {}
        # first-fit: per request and rank, a heap of (lowest host id, shape), checked when read
        self._lowest: dict[tuple[str, Need], dict[tuple, list]] = {}
        self._rank_of: dict[tuple[str, Need], dict[HostShape, tuple]] = {}
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
        if old is not None:
            self._unindex(old)
        self._hosts[host.id] = host
        self._index(host)

    def remove(self, host_id: int) -> None:
        self._unindex(self._hosts.pop(host_id))

    def _index(self, host: HostState) -> None:
        shape = host.shape
        bucket = self._buckets.get(shape)
        if bucket is None:
            self._buckets[shape] = [host.id]
            self._shapes.setdefault(shape.region, set()).add(shape)
            log = self._log.setdefault(shape.region, [])
            log.append(shape)
            for i, need in enumerate(self._needs.get(shape.region, ())):
                if len(log) - self._read[(shape.region, need)] >= MAX_LAG + i % MAX_LAG:
                    self._catch_up((shape.region, need))
        else:
            insort(bucket, host.id)
        if self.config.policy == "first-fit" and self._buckets[shape][0] == host.id:
            self._new_lowest(shape, host.id)

    def _new_lowest(self, shape: HostShape, host_id: int) -> None:
        """first-fit: the shape's lowest host id went down; its entries must say so."""
        for need in self._needs.get(shape.region, ()):
            key = (shape.region, need)
            rank = self._rank_of[key].get(shape)
            if rank is not None:
                heapq.heappush(self._lowest[key].setdefault(rank, []), (host_id, shape))

    def _unindex(self, host: HostState) -> None:
        shape = host.shape
        bucket = self._buckets[shape]
        del bucket[bisect_left(bucket, host.id)]
        if not bucket:
            del self._buckets[shape]
            self._shapes[shape.region].discard(shape)

    def warm(self, region: str) -> None:
        """Rank the region's hosts now for the requests of every plan of the config."""
        for plan in self.config.plans:
            self._heap(region, PlacementRequest.for_plan(plan, region).need)

    def _queue(self, key: tuple[str, Need], shape: HostShape) -> None:
        queued = self._queued[key]
        if shape in queued or not may_fit(shape, key[1]):
            return
        queued.add(shape)
        heap = self._heaps[key]
        floor = rank_floor(shape, key[1], self.config.for_host(shape))
        if heap and floor > heap[0][0][: len(floor)]:
            heapq.heappush(self._waiting[key], (floor, next(self._order), shape))
        else:
            self._score(key, shape)

    def _score(self, key: tuple[str, Need], shape: HostShape) -> None:
        # Not the memoised `best_fit`: the heap keeps the rank, and a memo of every shape ever
        # seen would only grow (and slow the garbage collector) in a long-running process.
        fit = choose(shape, key[1], self.config.for_host(shape))
        if fit is None:
            self._queued[key].discard(shape)
        else:
            heapq.heappush(self._heaps[key], (fit.rank, next(self._order), shape))
            if self.config.policy == "first-fit":
                self._rank_of[key][shape] = fit.rank
                heapq.heappush(self._lowest[key].setdefault(fit.rank, []), (self._buckets[shape][0], shape))
            elif self._by_rank:
                self._ties[key].setdefault(fit.rank, set()).add(shape)

    def _heap(self, region: str, need: Need) -> list:
        """The heap for this request, brought up to date with the shapes logged since last time."""
        key = (region, need)
        heap = self._heaps.get(key)
        if heap is None:
            heap = self._heaps[key] = []
            self._waiting[key] = []
            self._queued[key] = set()
            self._ties[key] = {}
            self._lowest[key] = {}
            self._rank_of[key] = {}
            self._needs.setdefault(region, []).append(need)
            self._read[key] = len(self._log.setdefault(region, []))
            for shape in self._shapes.get(region, ()):
                self._queue(key, shape)
        else:
            self._catch_up(key)
        return heap

    def _catch_up(self, key: tuple[str, Need]) -> None:
        region = key[0]
        log = self._log[region]
        for shape in log[self._read[key] :]:
            if shape in self._buckets:
                self._queue(key, shape)
        self._read[key] = len(log)
        live = len(self._shapes.get(region, ()))
        if len(log) > 2 * live + 1024:
            self._compact(region)
        if len(self._heaps[key]) + len(self._waiting[key]) > 2 * live + 1024:
            self._prune(key)

    def _prune(self, key: tuple[str, Need]) -> None:
        """Drop heap entries of shapes that no host has any more."""
        for heap in (self._heaps[key], self._waiting[key]):
            heap[:] = [entry for entry in heap if entry[2] in self._buckets]
            heapq.heapify(heap)
        self._queued[key] = {entry[2] for heap in (self._heaps[key], self._waiting[key]) for entry in heap}
        if self._by_rank:
            ties: dict[tuple, set[HostShape]] = {}
            for rank, _, shape in self._heaps[key]:
                ties.setdefault(rank, set()).add(shape)
            self._ties[key] = ties
            self._rank_of[key] = {shape: rank for rank, group in ties.items() for shape in group}
            self._lowest[key] = {rank: [(self._buckets[shape][0], shape) for shape in group]
                                 for rank, group in ties.items()}
            for entries in self._lowest[key].values():
                heapq.heapify(entries)

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

    def _best(self, key: tuple[str, Need]) -> list[HostShape]:
        """The live shapes that tie on the best rank (waiting shapes scored as needed)."""
        heap, waiting, queued = self._heaps[key], self._waiting[key], self._queued[key]
        while True:
            while heap and heap[0][2] not in self._buckets:
                queued.discard(heapq.heappop(heap)[2])  # its hosts all changed shape since
            while waiting and waiting[0][2] not in self._buckets:
                queued.discard(heapq.heappop(waiting)[2])
            if not waiting or (heap and waiting[0][0] > heap[0][0][: len(waiting[0][0])]):
                break
            self._score(key, heapq.heappop(waiting)[2])
        if self.config.policy == "first-fit":
            return self._lowest_of_best_rank(key)
        if self._by_rank:
            return self._tied_by_rank(key)
        tied: list = []
        while heap and (not tied or heap[0][0] == tied[0][0]):
            entry = heapq.heappop(heap)
            if entry[2] in self._buckets:
                tied.append(entry)
            else:
                queued.discard(entry[2])
        for entry in tied:
            heapq.heappush(heap, entry)
        return [entry[2] for entry in tied]

    def _lowest_of_best_rank(self, key: tuple[str, Need]) -> list[HostShape]:
        """first-fit: the shape holding the lowest host id among the shapes on the best rank.
        Entries whose shape is gone, or whose lowest id moved up, are dropped (the shape pushed
        again with its lowest id); a gone shape that comes back is queued and scored again."""
        heap = self._heaps[key]
        if not heap:
            return []
        top = heap[0][2]  # live: checked by `_best`
        lowest = self._lowest[key].setdefault(heap[0][0], [])
        while lowest:
            first, shape = lowest[0]
            bucket = self._buckets.get(shape)
            if bucket is not None and bucket[0] == first:
                break
            heapq.heappop(lowest)
            if bucket is None:
                self._queued[key].discard(shape)
            else:
                heapq.heappush(lowest, (bucket[0], shape))
        if not lowest or self._buckets[top][0] < lowest[0][0]:
            return [top]
        return [lowest[0][1]]

    def _tied_by_rank(self, key: tuple[str, Need]) -> list[HostShape]:
        """The live shapes on the best rank, from the rank's set (its dead shapes dropped: one
        that comes back is queued and scored again)."""
        heap = self._heaps[key]
        if not heap:
            return []
        group = self._ties[key].setdefault(heap[0][0], set())
        group.add(heap[0][2])  # live: checked by `_best`
        dead = [shape for shape in group if shape not in self._buckets]
        if dead:
            group.difference_update(dead)
            self._queued[key].difference_update(dead)
        return list(group)

    # --- decisions -------------------------------------------------------------------------

    def place(self, request: PlacementRequest) -> Placement | NoRoom:
        """What `placement.place(request, self.hosts(), self.config)` answers, found faster."""
        if request.host_id is not None:
            host = self._hosts.get(request.host_id)
            candidates = [host] if host is not None and host.region == request.region else []
            return place_pinned(request, candidates, self.config)
        key = (request.region, request.need)
        self._heap(*key)
        tied = self._best(key)
        if not tied:
            shapes = {s: len(self._buckets[s]) for s in self._shapes.get(request.region, ())}
            return no_room(request, shapes, self.config)
        host = self._pick(tied)
        fit = choose(host.shape, key[1], self.config.for_host(host))
        if fit is None:
            raise RuntimeError(f"host {host.id} ranked best for {key} but has no fit for it")
        return materialise(host, fit.assignment, request)

    def _pick(self, shapes: list[HostShape]) -> HostState:
        """Among hosts whose shapes tie on rank: the lowest id (`random`: a uniform draw)."""
        if self.config.policy != "random":
            return self._hosts[min(self._buckets[s][0] for s in shapes)]
        buckets = sorted((self._buckets[s] for s in shapes), key=lambda ids: ids[0])
        bucket, i = draw(self.config, [len(ids) for ids in buckets])
        return self._hosts[buckets[bucket][i]]

    def apply(self, placement: Placement, *, staff: bool = False) -> HostState:
        host = apply(self._hosts[placement.host_id], placement, staff=staff)
        self.update(host)
        return host

    def release(self, placement: Placement) -> HostState:
        host = release(self._hosts[placement.host_id], placement)
        self.update(host)
        return host
