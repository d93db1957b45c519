"""Sentences per second of sentence-transformers' all-MiniLM-L6-v2 on the CPU (batch 64) over the
first 200 reviews of the fine-foods sample repeated to N texts: the peer of
crates/quiver-embed/examples/embed_bench.rs. Loads the model from MODEL_DIR (the three files
scripts/fetch-minilm.sh writes) the same way tests/fixtures/make_reference.py does.

    python bench/embed_bench.py MODEL_DIR CSV [N_TEXTS]
"""

import csv
import importlib.util
import os
import sys
import tempfile
import time

import torch
from sentence_transformers import SentenceTransformer

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "make_reference", os.path.join(HERE, "../crates/quiver-embed/tests/fixtures/make_reference.py")
)
make_reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_reference)


def main() -> None:
    model_dir, csv_path = sys.argv[1:3]
    n_texts = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    with open(csv_path, newline="", encoding="utf-8") as f:
        reviews = [row["review"] for _, row in zip(range(200), csv.DictReader(f))]
    texts = [reviews[i % len(reviews)] for i in range(n_texts)]
    with tempfile.TemporaryDirectory() as folder:
        make_reference.build_model_folder(model_dir, folder)
        model = SentenceTransformer(folder, device="cpu")
        model.encode(texts[:64], batch_size=64, show_progress_bar=False)  # warm-up
        start = time.perf_counter()
        emb = model.encode(texts, batch_size=64, show_progress_bar=False)
        secs = time.perf_counter() - start
    assert emb.shape == (len(texts), 384)
    print(
        f"sentence-transformers: {len(texts)} texts in {secs:.2f} s = {len(texts) / secs:.1f} sentences/s "
        f"(threads {torch.get_num_threads()})"
    )


if __name__ == "__main__":
    main()
