"""The per-account token bucket, on a controlled clock."""

from gpucloud.api.ratelimit import RateLimiter


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_bursts_up_to_the_limit_then_refills_at_the_sustained_rate():
    clock = Clock()
    limiter = RateLimiter(60, clock=clock, wall=clock)  # one per second sustained
    verdicts = [limiter.hit("account:1") for _ in range(61)]
    assert all(v.allowed for v in verdicts[:60]) and not verdicts[60].allowed
    assert verdicts[60].retry_after == 1 and verdicts[60].headers()["Retry-After"] == "1"
    assert limiter.hit("account:2").allowed  # buckets are per key
    clock.now += 1.0
    assert limiter.hit("account:1").allowed
    assert not limiter.hit("account:1").allowed


def test_disabled_limiter_allows_everything_and_adds_no_headers():
    limiter = RateLimiter(0)
    assert all(limiter.hit("k").allowed for _ in range(1000))
    assert limiter.hit("k").limit == 0
