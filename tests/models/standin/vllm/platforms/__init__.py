"""vllm 0.32.0 ``platforms/__init__.py:296-305`` (``current_platform``) and ``platforms/cuda.py:227``."""

from types import SimpleNamespace

current_platform = SimpleNamespace(device_type="cuda")
