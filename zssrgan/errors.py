"""The errors a user can act on. The command line reports them in one line (exit status 2);
anything else is unexpected (a bug, or the machine failing: out of memory, a dead driver) and is
shown with its traceback."""
from __future__ import annotations


class UserError(Exception):
    """Bad input or an environment the user controls (a wrong option, an unreadable file, an
    unreachable tracking store, a cluster without room): the message says what to change."""


class InputError(UserError, ValueError):
    """A bad option, argument or value given by the user."""
