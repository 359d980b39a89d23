def policykit_wp_fault(ctx)
    return "copy"
