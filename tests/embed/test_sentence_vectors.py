"""Answer sentences are embedded once for every process and node: their vectors are kept in the database."""

from __future__ import annotations

import numpy as np
from sqlalchemy import func, select

from kb.config import Settings
from kb.embed.embedder import Embedder, model_input
from kb.storage.models import SentenceVector
from kb.storage.store import Store
from kb.text.cleaning import fold

SENTENCES = [
    "Senior management should lead the change.",
    "ผู้บริหารระดับสูงควรเป็นผู้นำการเปลี่ยนแปลง",
    "变革必须由高层领导推动。",
    "Senior management should lead the change.",  # twice: kept once
]


def stored_count(store: Store) -> int:
    with store.session() as session:
        return session.scalar(select(func.count()).select_from(SentenceVector))


def test_a_fresh_process_takes_the_vectors_another_one_kept(database_url, models_dir):
    store = Store(database_url)
    first = Embedder(Settings(models_dir=models_dir)).encode_sentences(SENTENCES, shared=store)
    assert stored_count(store) == 3

    restarted = Embedder(Settings(models_dir=models_dir))  # nothing cached in this process
    assert np.array_equal(restarted.encode_sentences(SENTENCES, shared=store), first)
    assert stored_count(store) == 3
    assert restarted._fast is None  # found in the database: the model was never opened to encode them
    store.dispose()


def test_a_kept_vector_is_what_a_later_encode_returns_and_is_never_overwritten(database_url, models_dir):
    store = Store(database_url)
    embedder = Embedder(Settings(models_dir=models_dir))
    text = "Call the customer back within two working hours."
    key = embedder.sentence_key(model_input(embedder.passage_prefix, fold(text)))
    marker = np.zeros(embedder.dimension, np.float32)
    marker[0] = 1.0
    store.keep_sentence_vectors({key: marker})
    store.keep_sentence_vectors({key: -marker})  # a second writer of the same sentence changes nothing
    assert np.array_equal(embedder.encode_sentences([text], shared=store)[0], marker)
    store.dispose()


def test_sentence_keys_differ_by_model_and_by_text(models_dir, embedder):
    other = Embedder(Settings(models_dir=models_dir))
    other.ref = type(other.ref)("another/model", other.ref.path, True)
    text = model_input(embedder.passage_prefix, "a sentence")
    assert embedder.sentence_key(text) != other.sentence_key(text)
    assert embedder.sentence_key(text) != embedder.sentence_key(text + ".")
