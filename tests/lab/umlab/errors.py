"""The lab's one exception.

Whatever the lab cannot do - boot a guest, run a command over SSH, meet a deadline,
tear something down - ends in a LabError whose text names the guest, the command and
the time, so that a failing test says what went wrong without a second run.
"""


class LabError(RuntimeError):
    """The lab could not do what was asked (boot, SSH, teardown)."""
