"""waiter.py with a fake clock: when ticks come, when poll_until stops, what it hands back."""

from ansible_collections.gpu_slicing.eks.plugins.module_utils.kube.waiter import poll_until, ticks

from .test_retries import Clock


def test_ticks_start_at_once_and_the_last_lands_on_the_deadline():
    c = Clock()
    assert list(ticks(5, 2, clock=c.clock, sleep=c.sleep)) == [0.0, 2.0, 4.0, 5.0]
    assert c.sleeps == [2, 2, 1]


def test_ticks_with_no_time_give_one_tick_and_never_sleep():
    c = Clock()
    assert list(ticks(0, 1, clock=c.clock, sleep=c.sleep)) == [0.0]
    assert c.sleeps == []


def test_ticks_count_the_time_the_caller_spent():
    c = Clock()
    seen = []
    for waited in ticks(10, 3, clock=c.clock, sleep=c.sleep):
        seen.append(waited)
        c.now += 2.5  # a slow read: the sleep after it is still one interval, cut at the deadline
    assert seen == [0.0, 5.5, 10.0] and c.now == 12.5 and c.sleeps == [3, 2.0]


def test_poll_until_stops_at_the_first_done_value():
    c = Clock()
    values = iter([1, 2, 3, 4])
    polls = []
    finished, value, waited = poll_until(lambda: next(values), lambda v: v >= 3, timeout=60, interval=5,
                                         clock=c.clock, sleep=c.sleep, on_poll=lambda v, w: polls.append((v, w)))
    assert (finished, value, waited) == (True, 3, 10.0)
    assert polls == [(1, 0.0), (2, 5.0), (3, 10.0)]


def test_poll_until_hands_back_the_last_read_on_timeout():
    c = Clock()
    reads = []

    def read():
        reads.append(c.now)
        return {"ready": len(reads)}

    finished, value, waited = poll_until(read, lambda v: False, timeout=7, interval=3, clock=c.clock, sleep=c.sleep)
    assert finished is False and value == {"ready": 4} and waited == 7.0
    assert reads == [0.0, 3.0, 6.0, 7.0]


def test_poll_until_done_at_once_does_not_sleep():
    c = Clock()
    assert poll_until(lambda: "x", bool, timeout=30, interval=1, clock=c.clock, sleep=c.sleep) == (True, "x", 0.0)
    assert c.sleeps == []
