"""Yiwangtong (一网通): the async API of the city's one-network government service platform."""
