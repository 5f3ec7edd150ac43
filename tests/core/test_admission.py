"""The connection caps: per user, and for all read-only peers together."""

from obsd.core.admission import Admission
from obsd.core.protocol import Access


def hold(admission: Admission, uid: int, access: Access, count: int) -> None:
    for _ in range(count):
        assert admission.refusal(uid, access) is None
        admission.take(uid, access)


def test_one_user_is_held_to_its_own_cap_and_others_still_get_in() -> None:
    admission = Admission(per_uid=3, read_only=10)
    hold(admission, 1000, Access.RO, 3)
    refusal = admission.refusal(1000, Access.RO)
    assert refusal is not None and "uid 1000 already holds 3 connections" in refusal
    assert admission.refusal(1001, Access.RO) is None


def test_a_read_only_crowd_never_locks_out_an_admin() -> None:
    admission = Admission(per_uid=3, read_only=4)
    hold(admission, 1000, Access.RO, 2)
    hold(admission, 1001, Access.RO, 2)
    refusal = admission.refusal(1002, Access.RO)
    assert refusal is not None and "4 read-only connections are open" in refusal
    hold(admission, 0, Access.RW, 3)
    assert admission.refusal(0, Access.RW) is not None, "an admin has a cap of its own"


def test_a_closed_connection_frees_its_place() -> None:
    admission = Admission(per_uid=1, read_only=1)
    hold(admission, 1000, Access.RO, 1)
    assert admission.refusal(1000, Access.RO) is not None
    admission.give_back(1000, Access.RO)
    assert admission.refusal(1000, Access.RO) is None
    assert admission.refusal(1001, Access.RO) is None
