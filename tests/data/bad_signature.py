"""A policy whose hook takes an argument the hookspec does not pass."""

from policykit import hookimpl


@hookimpl
def policykit_wp_fault(ctx, vmf):
    return "copy"
