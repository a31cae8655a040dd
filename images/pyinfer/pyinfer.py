"""Predict iris species: `pyinfer.py MODELDIR ATTRDIR OUTDIR`.

Loads MODELDIR/model.pkl and, for every CSV below ATTRDIR (rows of four measurements, no
header), writes one predicted label per line to OUTDIR/<file name without extension>.
"""

import sys
from pathlib import Path

import joblib
import pandas as pd

FEATURES = ["sepal_len", "sepal_wid", "petal_len", "petal_wid"]


def main(modeldir: str, attrdir: str, outdir: str) -> None:
    model = joblib.load(Path(modeldir) / "model.pkl")
    for csv in sorted(Path(attrdir).rglob("*.csv")):
        rows = pd.read_csv(csv, names=FEATURES)
        labels = model.predict(rows)
        (Path(outdir) / csv.stem).write_text("".join(f"{label}\n" for label in labels))


if __name__ == "__main__":
    main(*sys.argv[1:4])
