"""contacts routes."""

from fastapi import APIRouter

router = APIRouter(tags=["contacts"])
