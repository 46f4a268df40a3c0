"""vllm 0.32.0 ``distributed/parallel_state.py:2516`` (re-exported by ``distributed/__init__.py:5``)."""


def cleanup_dist_env_and_memory(shutdown_ray: bool = False) -> None:
    from vllm import RECORD

    RECORD.events.append(("cleanup", shutdown_ray))
