"""Models shared by learning, model policies and agents: loading a policy LM, its tokenizer and a value model
(``loading``), generating with them (``generation``: the HF backend; ``vllm_backend``), the cross-turn prefix cache
(``prefix_cache``) and the model policy that turns Turns into prompts and replies into Decisions (``policy``).

Imports torch and transformers: everything below this layer (envs, recording, scripted policies) does not.
"""
