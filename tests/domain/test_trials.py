"""What a trial's customer is told, stage by stage, on a controllable clock."""

from datetime import datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from gpucloud.domain.trials import ended_reason, notices

START = datetime(2026, 11, 2, 14, 30)
END = START + timedelta(days=7)


def stage(now, disks_until=None, status="active"):
    (n,) = notices(status, starts=START, ends=END, disks_until=disks_until, decision=None, now=now)
    return n


def test_start_two_days_one_day_and_end():
    assert (stage(START).type, stage(START).label) == ("promotion", "GPU trial started")
    assert stage(END - timedelta(days=2)).label == "GPU trial ends in 2 days"
    assert stage(END - timedelta(days=1, seconds=1)).label == "GPU trial ends in 2 days"
    assert stage(END - timedelta(days=1)).label == "GPU trial ends tomorrow"
    ended = stage(END + timedelta(minutes=30), disks_until=END + timedelta(days=14), status="ended")
    assert (ended.label, ended.severity, ended.when, ended.until) == (
        "GPU trial ended", "critical", END, END + timedelta(days=14))
    assert "2026-11-09 14:30 UTC" in ended.message and "2026-11-23 14:30 UTC" in ended.message
    # ending mid-hour: the notice turns at the minute, not at the next hour
    assert stage(END - timedelta(seconds=1)).label == "GPU trial ends tomorrow"
    assert stage(END).label == "GPU trial ended"


@given(st.integers(0, 7 * 24 * 3600 - 1))
def test_exactly_one_notice_while_it_runs_and_its_window_holds_now(offset):
    now = START + timedelta(seconds=offset)
    n = stage(now)
    assert n.when <= now < n.until


def test_pending_declined_and_the_boot_reason():
    (pending,) = notices("pending", starts=None, ends=None, disks_until=None, decision=None, now=START)
    assert "waiting for review" in pending.message
    (declined,) = notices("declined", starts=None, ends=None, disks_until=None, decision="use a work e-mail",
                          now=START)
    assert declined.message.endswith("declined: use a work e-mail.")
    reason = ended_reason(END, END + timedelta(days=14))
    assert reason.startswith("Your GPU trial ended on 2026-11-09 14:30 UTC; to keep using GPU plans")
    assert "kept until 2026-11-23 14:30 UTC" in reason
