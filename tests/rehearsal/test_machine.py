"""The rehearsal machine's own bookkeeping, without booting one (no root needed)."""

from __future__ import annotations

from pathlib import Path

from .machine import Machine, MachineState, _alive


def test_a_boot_that_fails_between_two_stand_ins_leaves_stop_the_one_already_started(tmp_path: Path):
    """A cold cache once failed a boot half-way through starting the stand-ins: those already started outlived
    `stop`, which reads the machine's state file, because their pids were written only once all had started."""
    machine = Machine(tmp_path)
    (tmp_path / "edge").mkdir()
    state = MachineState(stack="aws", netns="pxr-none", host_port=1, server_port=8443, scheme="https", api_key="k",
                         ca_certificate=None, cloud="aws", units=[])
    machine._save(state)
    machine._spawn("index", ["sleep", "120"], state, netns=False)
    # The next stand-in fails to start here: `boot` ends, and the command line's `stop` has only the state file.
    started = Machine(tmp_path).state.pids["index"]
    assert _alive(started)
    Machine(tmp_path).stop()
    assert not _alive(started)
    assert Machine(tmp_path).state.pids == {}
