"""Tortoise models, one entity (or a tight family) per file, with the queries that read them."""
