"""The cloud service: FastAPI + PostgreSQL, fleet, ingest, billing, alerts, reports, dashboard."""
