"""Configuration from HERALD_* environment variables and an optional .env file."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATA_DIR = Path("herald-data")


class Settings(BaseSettings):
    """Every setting Herald reads; see docs/configuration.md for the full list."""

    model_config = SettingsConfigDict(env_prefix="HERALD_", env_file=".env", extra="ignore")

    data_dir: Path = Field(default=DEFAULT_DATA_DIR, description="Where SQLite, backups and uploads live.")
    database_url: str = Field(default="", description="SQLAlchemy URL; empty means SQLite in data_dir.")
    default_region: str = Field(default="US", description="ISO country for phone numbers without one.")
    host: str = "127.0.0.1"
    port: int = 8025
    backup_schedule: str = Field(default="off", description="off | hourly | daily | weekly | monthly")
    backup_retention: int = Field(default=6, ge=1, description="How many scheduled backups to keep.")
    backup_dir: Path | None = None
    import_workers: int = Field(default=0, ge=0, description="Validation processes; 0 = one per core.")
    job_lease_seconds: float = Field(
        default=120.0, gt=0, description="A running job's lease (renewed at checkpoints); then others resume it."
    )
    secret_key: str = Field(default="", description="Signs tokens; generated into data_dir when empty.")
    session_idle_minutes: int = Field(default=30, ge=1, description="Web sign-in ends after this idle time.")
    session_absolute_hours: int = Field(default=12, ge=1, description="Web sign-in ends after this long.")
    max_body_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1024, description="Largest request body (JSON, forms); larger gets 413."
    )
    max_upload_bytes: int = Field(
        default=512 * 1024 * 1024, ge=1024, description="Largest upload to the import routes; larger gets 413."
    )

    @field_validator("default_region")
    @classmethod
    def _upper_region(cls, value: str) -> str:
        return value.strip().upper()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'herald.db').resolve()}"

    @property
    def resolved_backup_dir(self) -> Path:
        return self.backup_dir if self.backup_dir is not None else self.data_dir / "backups"


def load_settings() -> Settings:
    return Settings()
