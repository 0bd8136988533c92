"""The inbox: notifications written by other areas in the same transaction as the change they tell of."""
