#!/usr/bin/env python3
"""Writes www/assets/examples.u8: the first Fashion-MNIST test image of each class (0-9), 28x28
bytes each, in class order. The page's forward-process explorer shows them."""
import gzip, sys
from pathlib import Path

data = Path(sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist")
images = gzip.open(data / "t10k-images-idx3-ubyte.gz").read()[16:]
labels = gzip.open(data / "t10k-labels-idx1-ubyte.gz").read()[8:]
first = {}
for i, label in enumerate(labels):
    first.setdefault(label, i)
out = b"".join(images[first[c] * 784:(first[c] + 1) * 784] for c in range(10))
Path(__file__).resolve().parent.parent.joinpath("www/assets/examples.u8").write_bytes(out)
print(f"examples.u8: test images {[first[c] for c in range(10)]}")
