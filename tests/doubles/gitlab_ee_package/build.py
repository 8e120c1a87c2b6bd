"""Builds the STAND-IN `gitlab-ee` Debian package used by the offline Ansible tests.

It stands in for GitLab EE Omnibus (`gitlab-ee_<version>_amd64.deb`, which cannot be
downloaded here): its gitlab-ctl, gitlab-rails and gitlab-rake record their calls and follow
the contract described in root/opt/gitlab/embedded/standin/standin.py. The tests feed the
result to the gitlab role through its normal air-gapped source variable
`gitlab_package_file`.

Usage: python3 tests/doubles/gitlab_ee_package/build.py OUT_DIR [VERSION]
       (VERSION default 19.4.1-ee.0; prints the package path)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_VERSION = "19.4.1-ee.0"


def build(out_dir: Path, version: str = DEFAULT_VERSION) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    package = out_dir / f"gitlab-ee_{version}_amd64.deb"
    with tempfile.TemporaryDirectory(prefix="gitlab-ee-standin-") as tmp:
        tree = Path(tmp) / "pkg"
        shutil.copytree(HERE / "root", tree, ignore=shutil.ignore_patterns("__pycache__"))
        (tree / "DEBIAN").mkdir()
        control = (HERE / "DEBIAN" / "control.in").read_text().replace("@VERSION@", version)
        (tree / "DEBIAN" / "control").write_text(control)
        for script in ("postinst", "postrm"):
            shutil.copy2(HERE / "DEBIAN" / script, tree / "DEBIAN" / script)
            (tree / "DEBIAN" / script).chmod(0o755)
        for path in tree.rglob("*"):
            os.utime(path, (1700000000, 1700000000), follow_symlinks=False)
        env = dict(os.environ, SOURCE_DATE_EPOCH="1700000000")
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(package)],
            check=True,
            env=env,
            stdout=subprocess.DEVNULL,
        )
    return package


if __name__ == "__main__":
    print(build(Path(sys.argv[1]), *(sys.argv[2:3] or [DEFAULT_VERSION])))
