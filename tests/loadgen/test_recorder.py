"""loadgen.recorder: only the measure window counts, by intended send time."""

from loadgen import histogram
from loadgen.recorder import Recorder


def test_samples_count_by_intended_time_in_the_window():
    rec = Recorder(timeout=1.0)
    uid = rec.new_user()
    rec.sample(uid, 5.0, 5.0, 5.001, 10)  # before the window opens
    rec.open_window(10.0, 2.0)
    rec.sample(uid, 9.999, 10.5, 10.6, 10)  # intended before the window: not counted
    rec.sample(uid, 10.0, 10.0, 10.002, 10)
    rec.sample(uid, 11.9, 12.5, 12.6, 10)  # late send and echo, intended inside: counted
    rec.sample(uid, 12.0, 12.0, 12.001, 10)  # window is half-open
    assert rec.messages == 2 and rec.bytes == 20 and rec.per_user == [2]
    assert rec.total_messages == 5
    assert rec.corrected.fold().get_max_value() >= 699_000  # 12.6 - 11.9
    assert rec.uncorrected.fold().get_max_value() < 101_000  # 12.6 - 12.5


def test_errors_in_the_window_and_connect_errors_apart():
    rec = Recorder(timeout=1.0)
    rec.open_window(0.0, 1.0)
    rec.error("timeout", 0.5)
    rec.error("timeout", 1.5)
    rec.connect_error("refused")
    rec.connect_error("closed")  # not a connect kind
    assert rec.errors["timeout"] == 1
    assert rec.connect_errors == {"refused": 1, "reset": 0, "timeout": 0, "other": 1}
    assert rec.total_errors == 4


def test_interval_buckets_leave_once_and_late_samples_come_back_as_a_new_part():
    rec = Recorder(timeout=1.0)
    uid = rec.new_user()
    rec.open_window(0.0, 5.0)
    for t in (0.1, 0.2, 1.5, 3.0):
        rec.sample(uid, t, t, t + 0.001, 1)
    assert rec.take_buckets(2.4, final=False) == {}  # bucket 0 could still get samples
    first = rec.take_buckets(2.6, final=False)
    assert list(first) == ["0"]
    rec.sample(uid, 0.3, 2.7, 2.8, 1)  # a catch-up send intended in bucket 0
    rest = rec.take_buckets(6.0, final=True)
    assert sorted(rest) == ["0", "1", "3"]
    assert histogram.merge([first["0"], rest["0"]]).get_total_count() == 3
