"""Operator accounts: passwords, TOTP, recovery codes, sessions, throttling and the audit log."""
