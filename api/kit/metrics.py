"""Placeholder until the metrics module lands: counts nothing."""


def cache_hit(cache: str) -> None:
    return None


def cache_miss(cache: str) -> None:
    return None
