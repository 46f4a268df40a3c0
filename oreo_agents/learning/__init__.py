"""The learner: models (policy, value, tiny builder), data (episodes -> tokens), losses (one function per equation), trainers.

This is the only package (with ``agent``) that imports torch; import its modules directly, e.g.
``from oreo_agents.models.loading import ValueModel``.
"""
