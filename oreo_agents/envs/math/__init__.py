"""Math word problems as a multi-step Gymnasium env (``oreo_agents/Math-v0``): one episode = one problem, one action =
one solution step, reward 1.0 for a correct final answer.

- :mod:`.env` — :class:`MathEnv` (rules, ``info`` keys, ``clone()`` / ``get_state()`` / ``set_state()``).
- :mod:`.problems` — :class:`Problem`, GSM8K / MATH / reasoning-gym loaders, :func:`expert_steps`.
- :mod:`.generator` — the embedded seeded arithmetic word-problem generator (levels 1-5, disjoint splits).
- :mod:`.answers` — final-answer extraction and checking (strict numeric; bounded math-verify in a worker process).

Importing this package imports no engine and no math-verify; the env module is loaded by ``gym.make``.
"""
