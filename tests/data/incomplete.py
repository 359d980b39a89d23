"""A policy that decides only write faults."""


def policykit_wp_fault(ctx):
    return "copy"
