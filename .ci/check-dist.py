"""CI: the sdist and wheel `python -m build` made are clean: each holds the license, the typing
marker, the demo's ini, the sample inis of ini/ (as otel_uwsgi/samples) and the C source; no tests,
benchmarks, build leftovers or compiled objects in the sdist; the wheel installs and its CLI runs
from a fresh venv, `otel-uwsgi samples` printing each sample as it is in ini/.  .ci/check-wheels.sh
checks the wheel of every Python."""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted(p.name for p in (ROOT / "ini").glob("*.ini"))
dist = Path(sys.argv[1])
(sdist,) = dist.glob("otel_uwsgi-*.tar.gz")
(wheel,) = dist.glob("otel_uwsgi-*.whl")
problems = []

with tarfile.open(sdist) as tar:
    names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
for needed in ("LICENSE", "README.md", "pyproject.toml", "setup.py", "otel_uwsgi/py.typed",
               "otel_uwsgi/native/_accel.c", "otel_uwsgi/native/_accel.h", "otel_uwsgi/native/_lifecycle.c",
               "otel_uwsgi/native/_server.c", "otel_uwsgi/native/_slots.c", "otel_uwsgi/native/_django.c", "otel_uwsgi/runtime/_exit.c",
               "otel_uwsgi/demo/demo.ini",
               *(f"otel_uwsgi/samples/{name}" for name in SAMPLES)):
    if needed not in names:
        problems.append(f"sdist lacks {needed}")
for name in names:
    if name.endswith((".so", ".pyc", ".o")) or name.startswith(("tests/", "bench/", "build/")):
        problems.append(f"sdist holds {name}")

with zipfile.ZipFile(wheel) as zipped:
    members = zipped.namelist()
for needed in ("otel_uwsgi/py.typed", "otel_uwsgi/demo/demo.ini", "otel_uwsgi/__main__.py",
               *(f"otel_uwsgi/samples/{name}" for name in SAMPLES)):
    if needed not in members:
        problems.append(f"wheel lacks {needed}")
if not any(m.endswith("/LICENSE") and ".dist-info/" in m for m in members):
    problems.append("wheel lacks its LICENSE")
for ext in ("otel_uwsgi/native/_accel.", "otel_uwsgi/runtime/_exit."):
    if not any(m.startswith(ext) and m.endswith(".so") for m in members):
        problems.append(f"wheel lacks the built C extension {ext}so")
if any(m.startswith(("tests/", "bench/")) for m in members):
    problems.append("wheel holds tests or benchmarks")

with tempfile.TemporaryDirectory() as tmp:
    venv.create(tmp, with_pip=True)
    python = Path(tmp) / "bin" / "python"
    done = subprocess.run([python, "-m", "pip", "install", "-q", str(wheel)], capture_output=True, text=True)
    if done.returncode:
        problems.append(f"the wheel does not install: {done.stderr.strip()[-500:]}")
    else:
        out = subprocess.run([Path(tmp) / "bin" / "otel-uwsgi", "--version"], capture_output=True, text=True, cwd=tmp)
        if out.returncode or not out.stdout.startswith("otel-uwsgi "):
            problems.append(f"otel-uwsgi --version from the wheel: {out.stdout}{out.stderr}")
        for name in SAMPLES:
            out = subprocess.run([Path(tmp) / "bin" / "otel-uwsgi", "samples", name], capture_output=True, text=True,
                                 cwd=tmp)
            if out.returncode or out.stdout != (ROOT / "ini" / name).read_text():
                problems.append(f"otel-uwsgi samples {name} from the wheel does not print ini/{name}: {out.stderr}")

for problem in problems:
    print(f"check-dist: {problem}")
print(f"check-dist: {sdist.name}, {wheel.name}: " + ("FAILED" if problems else "clean"))
sys.exit(1 if problems else 0)
