"""loadgen.message: every byte depends on the sequence number."""

from loadgen.message import message


def test_message_has_the_requested_size():
    for size in (1, 2, 7, 8, 9, 255, 256, 65_537, 1 << 20):
        assert len(message(12345, size)) == size


def test_consecutive_messages_differ_even_at_one_byte():
    for size in (1, 3, 8, 64, 4096):
        assert message(41, size) != message(42, size)


def test_payload_bytes_follow_the_sequence_number():
    m = message(0x0102030405060708, 20)
    assert m[:8] == bytes([1, 2, 3, 4, 5, 6, 7, 8])
    assert list(m[8:]) == [(8 + i) % 256 for i in range(12)]
    assert message(0x0102030405060708, 3) == bytes([6, 7, 8])
