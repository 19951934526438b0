"""Scale-out: run ``build_fret``'s LLM and embedding work on a Ray cluster (``pip install
'gecko-distill[ray]'``), with the same stages, records and resuming as one process.

* :mod:`gecko_distill.scale.ray_executor`: ``build_fret(..., executor="ray")`` and
  :class:`RayExecutor` (the cluster address, workers, GPUs per worker);
* :mod:`gecko_distill.scale.cache_shards`: the LLM cache that many workers write at once;
* :mod:`gecko_distill.scale.vllm_requests`: the library's requests as vLLM inputs and back, for
  Ray's own vLLM processor (``ray.data.llm``) on GPU machines.

See ``docs/scaling.md``.
"""

from .ray_executor import RayExecutor, resolve_executor

__all__ = ["RayExecutor", "resolve_executor"]
