"""Population database (人口基础库): the interface, the seeded sandbox and the HTTP client."""

from integrations.population.base import PopulationDatabase, VerifyResult
from integrations.population.http import HttpPopulation
from integrations.population.sandbox import SANDBOX_PEOPLE, SandboxPopulation

__all__ = [
    "SANDBOX_PEOPLE",
    "HttpPopulation",
    "PopulationDatabase",
    "SandboxPopulation",
    "VerifyResult",
]
