"""The synthetic municipality: a deterministic population and writers for its three sources.

``population.generate`` invents pupils, lessons, attendance, social-services cases and police
rows for a municipality profile (``municipalities``: ``STOCKHOLM``, the default, or ``MALMO``);
``case_system_db``, ``police_files`` (and the SS 12000 server) serve them through the same
interfaces a real municipality has; ``ground_truth`` computes the indicator values directly from
the population and its profile's reference CSVs, independently of the pipeline, so that the
pipeline's output can be checked.
"""

from samverkan.simulator.municipalities import (
    MALMO,
    STOCKHOLM,
    Municipality,
    SchoolUnit,
    profile,
    write_reference,
)
from samverkan.simulator.population import Population, generate

__all__ = ["MALMO", "STOCKHOLM", "Municipality", "Population", "SchoolUnit", "generate", "profile",
           "write_reference"]
