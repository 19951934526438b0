"""gecko_distill: distil a large language model into a small, fast text embedder.

The FRet pipeline of Google's Gecko paper, one plain function per stage, and E5-mistral's
corpus-free synthetic data::

    from gecko_distill import build_fret, generate_triplets
    examples = build_fret("corpus.jsonl", output_dir="fret/")   # generate → retrieve → relabel
    synthetic = generate_triplets(llm, output_dir="synth/")     # brainstorm → triplets
"""

from ._version import __version__
from .config import FRetConfig, GenerateConfig, RelabelConfig, RetrieveConfig, Round1Config
from .corpus import load_passages
from .e5.config import SynthConfig
from .e5.synth import generate_triplets
from .embedder.encoding import encode_documents, encode_queries
from .embedder.evaluate import EvalConfig, RetrievalReport, evaluate, plot_reports
from .embedder.formatting import QueryFormat, format_document, format_query
from .embedder.pretrain import PretrainConfig, pretrain
from .embedder.train import TrainConfig, train
from .errors import GeckoDistillError, InputError, MissingDependencyError, OutputFolderInUseError, StaleOutputError
from .fret.generate import generate
from .fret.pipeline import FRetDataset, build_fret
from .fret.relabel import relabel
from .fret.retrieve import retrieve
from .llm import LLM, CachedLLM, get_llm
from .records import Candidate, FRetExample, GeneratedQuery, Passage, RankedCandidates, Skip

__all__ = [
    "__version__",
    # pipeline and stages
    "build_fret",
    "FRetDataset",
    "load_passages",
    "generate",
    "retrieve",
    "relabel",
    "generate_triplets",
    "pretrain",
    "train",
    "evaluate",
    "plot_reports",
    "RetrievalReport",
    # encoding exactly as trained
    "encode_queries",
    "encode_documents",
    # configs
    "FRetConfig",
    "GenerateConfig",
    "RetrieveConfig",
    "Round1Config",
    "RelabelConfig",
    "SynthConfig",
    "PretrainConfig",
    "TrainConfig",
    "EvalConfig",
    # records
    "Passage",
    "GeneratedQuery",
    "Candidate",
    "RankedCandidates",
    "FRetExample",
    "Skip",
    # LLM backends
    "LLM",
    "CachedLLM",
    "get_llm",
    # formatting
    "format_query",
    "format_document",
    "QueryFormat",
    # errors
    "GeckoDistillError",
    "InputError",
    "StaleOutputError",
    "OutputFolderInUseError",
    "MissingDependencyError",
]
