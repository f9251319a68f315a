"""Azure Functions blueprints (Python v2 model). Thin adapters over ``ingestion.events``."""
