"""Delivery settings (HERALD_SMTP_*, HERALD_DELIVERY_*, …): providers, leases, retries, breakers, quiet hours."""

from __future__ import annotations

import datetime as dt

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from herald.db.runtime import Runtime
from herald.schedule.caps import CapRule


class DeliverySettings(BaseSettings):
    """Read from HERALD_* variables (and .env); see docs/delivery.md for the full list."""

    model_config = SettingsConfigDict(env_prefix="HERALD_", env_file=".env", extra="ignore")

    # --- e-mail -------------------------------------------------------------------------------------
    smtp_host: str = Field(default="", description="SMTP relay; empty means the local Maildir in data_dir.")
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: str = Field(default="starttls", pattern="^(starttls|tls|plain)$")
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_pool_size: int = Field(default=0, ge=0, description="Connections; 0 = the worker's concurrency.")
    email_from: str = Field(default="herald@localhost", description="Default From address.")
    smtp_reconcile_log: str = Field(
        default="", description="The local postfix's mail log: crashed/unknown SMTP attempts are looked up there."
    )
    smtp_reconcile_settle_seconds: float = Field(
        default=5.0, ge=0, description="How long after the last possible write an absent acceptance is final."
    )
    wire_marks_dir: str = Field(
        default="", description="Where workers mark each final SMTP dot before writing it; empty = data_dir/marks."
    )
    wire_marks_keep_hours: float = Field(
        default=24.0, gt=0, description="Mark files of stopped workers last written longer ago are deleted."
    )
    resend_unconfirmed_transactional: bool = Field(
        default=False,
        description="A transactional e-mail whose final dot may have left a dead worker is re-sent (same "
        "Message-ID) instead of settling as sent_unconfirmed.",
    )

    # --- SMS / WhatsApp / voice ---------------------------------------------------------------------
    embedded_simulator: bool = Field(
        default=True, description="With no HERALD_TWILIO_BASE_URL, send SMS/WhatsApp/voice to an in-process simulator."
    )
    simulator_port: int = Field(default=0, ge=0, le=65535, description="Port of the embedded simulator; 0 = any.")
    public_url: str = Field(default="", description="Public base URL of `herald serve` (for provider callbacks).")

    # --- webhooks -----------------------------------------------------------------------------------
    webhook_secrets: str = Field(default="", description="Comma-separated whsec_… signing secrets, newest first.")
    webhook_allow_private: bool = Field(default=False, description="Allow private/loopback targets (tests only).")

    # --- the worker ---------------------------------------------------------------------------------
    delivery_batch_size: int = Field(default=100, ge=1, le=5000, description="Rows claimed per transaction.")
    delivery_lease_seconds: float = Field(default=60.0, gt=0, description="A claim's lease; then others may take it.")
    delivery_max_retries: int = Field(default=5, ge=0, description="Transient failures per channel before failover.")
    delivery_backoff_base_seconds: float = Field(default=2.0, gt=0)
    delivery_backoff_max_seconds: float = Field(default=600.0, gt=0)
    delivery_pass_seconds: float = Field(default=5.0, gt=0, description="Longest drain per worker pass.")
    breaker_threshold: int = Field(default=5, ge=1, description="Consecutive provider failures that open it.")
    breaker_cooldown_seconds: float = Field(default=30.0, gt=0, description="Open time before one probe.")
    soft_bounce_limit: int = Field(
        default=3, ge=1, description="Soft bounces in a row (no success between) that suppress an address."
    )
    idempotency_retention_hours: int = Field(
        default=24, ge=24, description="Keep Idempotency-Key records at least this long (replays answer the same)."
    )
    reconcile_delay_seconds: float = Field(default=5.0, ge=0, description="Wait before looking an unknown up.")
    unknown_deadline_seconds: float = Field(
        default=600.0, ge=0, description="Unknown outcomes: give up looking (lookups) / assume sent (SMTP)."
    )

    # --- rules --------------------------------------------------------------------------------------
    quiet_start: dt.time = Field(default=dt.time(8, 0), description="Local time from which messages may go.")
    quiet_end: dt.time = Field(default=dt.time(20, 0), description="Local time from which they may not.")
    quiet_exempt_transactional: bool = Field(
        default=True, description="Transactional messages (resets, receipts, codes) ignore quiet hours."
    )
    quiet_exempt_incident: bool = Field(default=False, description="Incident notices ignore quiet hours.")
    default_timezone: str | None = Field(default=None, description="The account's zone, the last resort.")
    delivery_caps: str = Field(
        default="", description="channel:class:max:window_seconds:hold|drop, comma-separated; * for any."
    )

    def cap_rules(self) -> tuple[CapRule, ...]:
        rules = []
        for item in filter(None, (part.strip() for part in self.delivery_caps.split(","))):
            channel, message_class, count, window, action = item.split(":")
            window_length = dt.timedelta(seconds=float(window))
            if action == "drop":
                rules.append(CapRule(channel, message_class, int(count), window_length, on_exceed="drop"))
            else:
                rules.append(CapRule(channel, message_class, int(count), window_length, on_exceed="hold"))
        return tuple(rules)


def delivery_settings(runtime: Runtime) -> DeliverySettings:
    """This process's delivery settings: read once by the composition root (or on first use) and kept on the
    runtime, so an API request does not pay ~3 ms to parse them again; treat the result as read-only."""
    return runtime.part(DeliverySettings, DeliverySettings)


def load_delivery_settings() -> DeliverySettings:
    """Read HERALD_* (and .env) now. Only the composition root and code without a runtime call this; everything
    else asks `delivery_settings(runtime)`."""
    return DeliverySettings()
