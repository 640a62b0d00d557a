"""Background work: scheduled jobs now, deliveries later."""
