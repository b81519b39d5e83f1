"""Nebula's test suite (helpers shared by several test modules live here and in ``_servers.py``)."""


def interruptible() -> None:
    """``preexec_fn`` for a child process that a test interrupts with SIGINT.

    A shell without job control (``make test &`` in a script, nohup, some CI runners) starts
    background commands with SIGINT ignored, children inherit that, and Python then installs no
    KeyboardInterrupt handler: the child would never see the signal. Restoring the default first
    makes the child behave as it does under an interactive terminal.
    """
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
