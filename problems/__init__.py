"""Problem families for SurCo: one subpackage each (``sharding``, ``routing``,
``portfolio``, ``photonics``). Import them explicitly, e.g.
``from surco.problems import sharding``."""
