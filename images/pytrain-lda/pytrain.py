"""Train linear discriminant analysis on iris: `pytrain.py INDIR OUTDIR`.

Reads INDIR/iris.csv (no header: four measurements and a label), writes the fitted model
to OUTDIR/model.pkl (joblib) and its description to OUTDIR/model.txt.
"""

import sys
from pathlib import Path

import joblib
import pandas as pd
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

FEATURES = ["sepal_len", "sepal_wid", "petal_len", "petal_wid"]


def main(indir: str, outdir: str) -> None:
    data = pd.read_csv(Path(indir) / "iris.csv", names=[*FEATURES, "label"])
    model = LinearDiscriminantAnalysis()
    model.fit(data[FEATURES], data["label"])
    joblib.dump(model, Path(outdir) / "model.pkl")
    (Path(outdir) / "model.txt").write_text(f"{model}\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])
