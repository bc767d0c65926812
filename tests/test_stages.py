"""The pipeline machinery on its own (ingest/stages.py): batches, hand-on in order, halting, the end marker."""

from __future__ import annotations

import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from archiver.ingest.stages import END, Halting, batch_stage, hand_on_in_order, start_each


class Stop(Exception):
    pass


def _drain(box: queue.Queue) -> list:
    out = []
    while (item := box.get(timeout=10)) is not END:
        out.append(item)
    return out


def test_a_batch_stage_takes_what_waits_in_batches_and_hands_everything_on_in_order():
    inbox, outbox, seen = queue.Queue(), queue.Queue(), []
    for i in range(10):
        inbox.put(i)
    inbox.put(END)
    halting = Halting((Stop,))
    batch_stage(inbox, lambda items: seen.append(list(items)), outbox, 4, 0.05, halting, halting.fail, lambda _i: None)
    assert seen == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]] and _drain(outbox) == list(range(10))


def test_a_lone_item_waits_only_the_linger_for_company():
    inbox, outbox, batches = queue.Queue(), queue.Queue(), []
    halting = Halting((Stop,))
    worker = threading.Thread(target=batch_stage, args=(inbox, batches.append, outbox, 8, 0.05, halting,
                                                        halting.fail, lambda _i: None))
    worker.start()
    inbox.put("a")
    assert outbox.get(timeout=5) == "a"  # handed on after the linger, not held for a full batch
    inbox.put(END)
    worker.join(5)
    assert batches == [["a"]] and outbox.get(timeout=5) is END


def test_a_stop_halts_and_drops_a_bug_fails_and_both_still_hand_on_to_the_end():
    dropped, halts = [], []
    halting = Halting((Stop,))

    def halt(exc: BaseException) -> None:
        halts.append(exc)
        halting.halt(exc, drop=True)

    def work(items: list) -> None:
        if 2 in items:
            raise Stop("disk full")

    inbox, outbox = queue.Queue(), queue.Queue()
    for item in (1, 2, 3, END):
        inbox.put(item)
    batch_stage(inbox, work, outbox, 1, 0.0, halting, halt, dropped.extend)
    assert [str(e) for e in halts] == ["disk full"] and dropped == [2, 3]  # after the halt, the rest is dropped
    assert _drain(outbox) == [1, 2, 3] and halting.crash is None

    crashing = Halting((Stop,))
    inbox = queue.Queue()
    for item in ("x", END):
        inbox.put(item)
    batch_stage(inbox, lambda _items: 1 / 0, None, 1, 0.0, crashing, halt, lambda _i: None)
    assert isinstance(crashing.crash, ZeroDivisionError) and crashing.halted.is_set() and crashing.dropping
    assert not crashing.halt(Stop("later"), drop=False)  # the first end counts


def test_work_started_in_parallel_is_handed_on_in_its_order_and_an_error_it_returns_halts():
    halting, halts, dropped = Halting((Stop,)), [], []
    inbox, started, outbox = queue.Queue(), queue.Queue(2), queue.Queue()

    def work(n: int):
        time.sleep(0.05 * (5 - n))  # the later ones end first
        return Stop(f"item {n}") if n == 3 else None

    with ThreadPoolExecutor(3) as pool:
        threads = [threading.Thread(target=start_each, args=(inbox, lambda n: pool.submit(work, n), started,
                                                             halting, dropped.extend)),
                   threading.Thread(target=hand_on_in_order, args=(started, outbox, halting, halts.append,
                                                                   dropped.extend))]
        for thread in threads:
            thread.start()
        for n in (*range(5), END):
            inbox.put(n)
        assert _drain(outbox) == [0, 1, 2, 3, 4]
        for thread in threads:
            thread.join(5)
    assert [str(e) for e in halts] == ["item 3"] and dropped == [3]
