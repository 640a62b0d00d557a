"""Delivery: the per-person send ledger, the worker that drains it, failover, breakers and reconciliation."""
