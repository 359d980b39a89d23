"""A policy with a misspelt hook."""

from policykit import hookimpl


@hookimpl
def policykit_wp_faul(ctx):
    return "copy"
