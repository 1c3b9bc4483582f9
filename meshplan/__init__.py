"""meshplan: preview, diff and draw a stack's graph without a cluster or credentials."""


class UserError(Exception):
    """A mistake the user can fix (arguments, a stack file, a plan file, a git revision).

    The command line prints its message on one line and exits 2, never a Python stack trace.
    """
