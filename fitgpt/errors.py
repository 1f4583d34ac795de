"""
How a script fails and stops: the errors fitgpt reports to a user as one line instead of a
traceback, and how an entry point ends on Ctrl-C or SIGTERM (train.py's loop: StopRequest).

Every entry point runs its main() through exit_on_error: a FitGPTError prints "error: <message>"
on stderr and exits with its exit_code, 2 for bad input (a setting, a file, a dataset) and 1 for a
run that failed on good input (non-finite loss, out of memory, a checkpoint that could not be
written). An OSError that reaches it (a file that cannot be read or written) is one line and exit
1 as well. Anything else is a bug and keeps its traceback.

Signals: Ctrl-C (SIGINT) and SIGTERM end a script with one line and exit code 130 or 143 at any
moment. While its modules are still importing (seconds, for torch), exit_at_once_on_signals ends
it at once: nothing has been written. From main() on they raise, so that every file being
written atomically is removed and the one it replaces stays intact; train.py's loop instead
finishes the iteration and saves a checkpoint (StopRequest).
"""

import errno
import os
import shutil
import signal
import sys
from collections.abc import Callable

from fitgpt.formatting import MIB

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class FitGPTError(Exception):
    """Bad input: the message names the file or setting and says what to do."""

    exit_code = 2


class ConfigError(FitGPTError):
    """A bad config file, override or setting value."""


class DataError(FitGPTError):
    """Input data that cannot be used: a text file, a shard, a dataset folder."""


class CheckpointError(FitGPTError):
    """A checkpoint that cannot be read or used."""


class SetupError(FitGPTError):
    """A device or dtype this machine cannot provide."""


class RunFailure(FitGPTError):
    """A run that started from good input and could not go on."""

    exit_code = 1


class Interrupted(BaseException):
    """Ctrl-C or SIGTERM, raised like KeyboardInterrupt so that cleanup code runs."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def first_line(error: BaseException, with_type: bool = False) -> str:
    """The first line of an exception's message (its type's name when it has none), for a one-line
    report; with_type: after its type's name ('ConnectionError: ...')."""
    text = str(error).strip()
    if not text:
        return type(error).__name__
    return f"{type(error).__name__}: {text.splitlines()[0]}" if with_type else text.splitlines()[0]


def os_error_line(e: OSError) -> str:
    """An OSError as one line: what failed and on which file; a full disk says how much is free."""
    if e.errno == errno.ENOSPC:
        folder = os.path.dirname(os.path.abspath(e.filename)) if e.filename else "."
        free = shutil.disk_usage(folder).free / MIB if os.path.isdir(folder) else 0.0
        where = f" writing {e.filename}" if e.filename else ""
        return f"no space left on device{where} ({free:.1f} MiB free there); free disk space or write elsewhere"
    return f"{e.strerror or e}: {e.filename}" if e.filename else str(e.strerror or e)


def exit_at_once_on_signals() -> None:
    """Until exit_on_error takes over: Ctrl-C or SIGTERM end the script with one line at once."""

    def handler(signum, frame):
        os.write(2, f"interrupted by {signal.Signals(signum).name} while starting; nothing was written\n".encode())
        os._exit(128 + signum)

    for signum in SIGNALS:
        signal.signal(signum, handler)


def _raise_interrupted(signum, frame):
    raise Interrupted(signum)


def exit_on_error(main: Callable[[list[str]], object], argv: list[str] | None = None) -> None:
    """Run main(argv) as a script's entry point: fitgpt errors and signals become one line."""
    previous = {signum: signal.signal(signum, _raise_interrupted) for signum in SIGNALS}
    try:
        main(sys.argv[1:] if argv is None else argv)
    except FitGPTError as e:
        print(f"error: {e}", file=sys.stderr, flush=True)
        sys.exit(e.exit_code)
    except OSError as e:
        print(f"error: {os_error_line(e)}", file=sys.stderr, flush=True)
        sys.exit(1)
    except (KeyboardInterrupt, Interrupted) as e:
        signum = getattr(e, "signum", signal.SIGINT)
        print(f"interrupted by {signal.Signals(signum).name}", file=sys.stderr, flush=True)
        sys.exit(128 + signum)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class StopRequest:
    """SIGTERM/SIGINT ask the run to stop after the current iteration; a second SIGINT exits.
    Use as a context manager: the previous handlers come back afterwards (train.run in-process)."""

    def __init__(self):
        self.requested = None
        self.previous = {}

    def __enter__(self) -> "StopRequest":
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame):
        if self.requested is not None and signum == signal.SIGINT:
            print("second interrupt: exiting now, without a checkpoint", flush=True)
            os._exit(130)
        self.requested = signal.Signals(signum).name
        print(f"{self.requested} received: finishing this iteration, then saving a checkpoint", flush=True)
