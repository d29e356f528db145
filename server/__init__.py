"""yomitoki server: the read path over HTTP (search, documents, answering, models)."""
