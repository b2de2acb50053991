"""OTLP/HTTP trace intake at ``/v1/traces`` (placeholder: the OTLP helper replaces this)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
