"""Build `.whl/site.tar.xz`: the packages the GPU machine lacks, trimmed to fit one device call.

    python benchmarks/gpu_wheels.py [--cache .whl/cache] [--split-mib 45] [--no-strip]
                                    [--verify-python /path/to/python3.12]
    python benchmarks/gpu_wheels.py --check        # smoke test of the unpacked site (any machine)

Why: the GPU machine (Python 3.12, torch 2.11 CUDA, no network) has numpy, opencv, safetensors, pyyaml,
tqdm, matplotlib, click, msgpack, protobuf, requests, aiohttp ... but not av, ray, kornia (+ kornia-rs),
nor ray's jsonschema (+ referencing, rpds-py, jsonschema-specifications); those are every non-extra
requirement of the pinned wheels that the image lacks (the script checks the METADATA again). One call
carries at most 64 MiB, the repo's ~9 MiB included, and the machine goes cold 30 s after a call, so the
wheels must fit one call (~45 MiB); as downloaded they are 117 MiB (ray 76 MiB, av 34 MiB), 316 MiB
unpacked. (With .gpu_carry's 28 MiB that is still two calls: benchmarks/gpu_run.sh.)

What it does: `pip download` the cp312 manylinux x86_64 wheels (local index), unzip them into one site
folder (= `pip install --target`, exec bits kept), drop what `vsr upscale/bench/batch` never load (Java
jar 33 MiB, dashboard web client 9, rllib/tune/train/serve/data/llm/air 17, tests, type stubs, Cython
sources, RECORDs), `strip --strip-unneeded` the ELF files that still have a symbol table (69 MiB: Ray's
_raylet.so, raylet and gcs_server, kornia_rs, av's and the vendored aiohttp's extension modules; only
crash backtraces lose function names; av.libs' FFmpeg is already stripped), and pack the rest with
`xz -9e` (~3.5 min of one core). Measured (ray 2.60.0, av 18.1.0, kornia 0.9.0): 316 MiB unpacked ->
187 MiB trimmed and stripped -> site.tar.xz 38.9 MiB. Verified with a Python 3.12 venv (torch 2.13):
`--check` (imports, ray.init + a task + an actor, with no import error in Ray's logs, libx264 round
trip, kornia) and a 250-frame `vsr upscale --model espcn`. Not covered: `vsr train --workers` (Ray Train).

On the GPU machine, with `carry: [".whl/site.tar.xz", ...]` (the cache stays here), `benchmarks/gpu_run.sh
first` unpacks it into /tmp/site and puts that on PYTHONPATH (docs/performance.md, "CUDA").
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / ".whl"
ARCHIVE = OUT_DIR / "site.tar.xz"
CLIP = ROOT.parent / "shared" / "data" / "videos" / "bikes.mp4"

#: the versions in the project's .venv
PINS = {
    "ray": "2.60.0", "av": "18.1.0", "kornia": "0.9.0", "kornia-rs": "0.2.0", "jsonschema": "4.26.0",
    "jsonschema-specifications": "2025.9.1", "referencing": "0.37.0", "rpds-py": "2026.9.1",
}
#: already on the GPU machine's image (any version)
IMAGE = """
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build certifi
charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cupy-cuda13x cycler
cython einops filelock flatbuffers fonttools frozenlist fsspec grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig jinja2 joblib kiwisolver lazy-loader llvmlite lxml
markdown markdown-it-py markupsafe matplotlib mdurl ml-dtypes mpmath msgpack multidict networkx ninja numba
numpy onnx onnxruntime opencv-python-headless packaging pandas pathspec pillow pip pluggy prometheus-client
propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyparsing pytest pytest-timeout pytest-xdist
python-dateutil pyyaml regex requests rich safetensors scikit-image scikit-learn scipy setuptools six
sortedcontainers sympy tabulate threadpoolctl tifffile torch torchaudio torchvision tqdm triton typer
typing-extensions urllib3 werkzeug wheel wrapt yarl zipp
"""
PREINSTALLED = frozenset(IMAGE.split())
PLATFORMS = ["manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_24_x86_64",
             "manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux_2_5_x86_64", "manylinux1_x86_64"]

#: removed from the site folder (globs relative to it); everything `ray.init`, a task and an actor need stays
TRIM = [
    "ray/jars",  # Java workers
    "ray/dashboard/client",  # the dashboard's web build (the CLI runs Ray with include_dashboard=False)
    "ray/rllib", "ray/tune", "ray/train", "ray/serve", "ray/data", "ray/llm", "ray/air", "ray/workflow",
    "ray/util/spark", "ray/util/dask", "ray/util/xgboost", "ray/util/lightgbm", "ray/util/horovod",
    "ray/util/joblib", "ray/util/sgd",
    "**/tests", "**/__pycache__", "**/*.pyi", "**/*.pxd", "**/*.pyx", "**/*.pxi", "**/*.js.map",
    "ray/includes", "av/*.h", "av/*.c", "*.dist-info/RECORD", "bin",
]


def mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def tree_size(path: Path) -> int:
    if path.is_file() or path.is_symlink():
        return path.lstat().st_size
    return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file())


def download(cache: Path, pins: dict[str, str]) -> list[Path]:
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version",
           "3.12", "--implementation", "cp", "-q", "-d", str(cache)]
    for plat in PLATFORMS:
        cmd += ["--platform", plat]
    subprocess.run(cmd + [f"{n}=={v}" for n, v in pins.items()], check=True)
    wheels = []
    for name, version in pins.items():
        stem = f"{name.replace('-', '_')}-{version}-"
        found = sorted(p for p in cache.glob("*.whl") if p.name.lower().startswith(stem.lower()))
        if not found:
            raise SystemExit(f"no wheel for {name}=={version} in {cache}")
        wheels.append(found[-1])
    return wheels


def norm(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def missing_requirements(wheels: Iterable[Path], bundled: Iterable[str]) -> list[str]:
    """Non-extra requirements (for CPython 3.12 on Linux) of the wheels that neither they nor the image
    provide."""
    from packaging.requirements import Requirement

    env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
           "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
           "extra": ""}
    have = PREINSTALLED | {norm(b) for b in bundled}
    missing = []
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            meta = next(n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA"))
            for line in zf.read(meta).decode().splitlines():
                if not line.startswith("Requires-Dist:"):
                    continue
                req = Requirement(line.split(":", 1)[1].strip())
                if (req.marker is None or req.marker.evaluate(env)) and norm(req.name) not in have:
                    missing.append(f"{wheel.name.split('-')[0]} needs {req}")
    return missing


def unpack(wheels: Iterable[Path], site: Path) -> None:
    """Unzip every wheel into ``site`` (what ``pip install --target`` gives), keeping the exec bits."""
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                path = Path(zf.extract(info, site))
                mode = info.external_attr >> 16
                if mode and not info.is_dir():
                    path.chmod(mode & 0o777)


def trim(site: Path) -> list[tuple[str, int]]:
    removed = []
    for pattern in TRIM:
        size = 0
        for path in sorted(site.glob(pattern), key=lambda p: len(p.parts)):
            if not path.exists():  # inside a folder already removed
                continue
            size += tree_size(path)
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        removed.append((pattern, size))
    return removed


def is_unstripped_elf(path: Path) -> bool:
    with path.open("rb") as f:
        if f.read(4) != b"\x7fELF":
            return False
    out = subprocess.run(["readelf", "-S", "-W", str(path)], capture_output=True, text=True).stdout
    return " .symtab " in out


def strip(site: Path) -> int:
    """``strip --strip-unneeded`` every ELF file that still has a symbol table; returns the bytes saved.
    Only files the wheels' builders did not strip (not auditwheel's patched libraries)."""
    if not (shutil.which("strip") and shutil.which("readelf")):
        print("strip/readelf not found: binaries left as they are")
        return 0
    saved = 0
    for path in sorted(p for p in site.rglob("*") if p.is_file() and not p.is_symlink()):
        if path.suffix in (".py", ".json", ".txt") or not is_unstripped_elf(path):
            continue
        before = path.stat().st_size
        subprocess.run(["strip", "--strip-unneeded", str(path)], check=True)
        saved += before - path.stat().st_size
    return saved


def pack(site: Path, archive: Path) -> None:
    """A reproducible tar (sorted, mtime 0, root-owned), xz -9e."""
    def clean(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
        return info

    with archive.open("wb") as out:
        if shutil.which("xz"):
            xz = subprocess.Popen(["xz", "-9e", "-T0", "-c"], stdin=subprocess.PIPE, stdout=out)
            assert xz.stdin is not None
            with tarfile.open(fileobj=xz.stdin, mode="w|") as tar:
                for path in sorted(site.rglob("*")):
                    tar.add(path, arcname=str(path.relative_to(site)), recursive=False, filter=clean)
            xz.stdin.close()
            if xz.wait():
                raise SystemExit("xz failed")
        else:
            import lzma

            with lzma.open(out, "wb", preset=9 | lzma.PRESET_EXTREME) as lz, \
                    tarfile.open(fileobj=lz, mode="w|") as tar:
                for path in sorted(site.rglob("*")):
                    tar.add(path, arcname=str(path.relative_to(site)), recursive=False, filter=clean)


def split(archive: Path, part_mib: float) -> list[Path]:
    part = int(part_mib * 2**20)
    data = archive.read_bytes()
    if len(data) <= part:
        return [archive]
    parts = []
    for i in range(0, len(data), part):
        path = archive.with_name(f"{archive.name}.part{i // part}")
        path.write_bytes(data[i:i + part])
        parts.append(path)
    archive.unlink()
    return parts


def check() -> None:
    """What the project needs from the carried packages: imports, a local Ray with a task and an actor,
    an H.264 decode/encode round trip with PyAV, a kornia op."""
    import importlib.metadata
    import tempfile as tf

    import av
    import jsonschema  # noqa: F401
    import kornia
    import numpy as np
    import ray
    import torch

    names = ("av", "ray", "kornia", "kornia-rs", "jsonschema", "torch", "numpy")
    print("versions:", {n: importlib.metadata.version(n) for n in names})
    for m in (av, ray, kornia):
        print(f"  {m.__name__} from {Path(str(m.__file__)).parent}")
    ray.init(num_cpus=2)
    logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    try:
        @ray.remote
        def square(x: int) -> int:
            return x * x

        @ray.remote(num_gpus=0)
        class Counter:
            def __init__(self) -> None:
                self.n = 0

            def add(self, k: int) -> int:
                self.n += k
                return self.n

        counter = Counter.remote()  # type: ignore[attr-defined]
        print("ray task:", ray.get([square.remote(i) for i in range(4)]),
              "actor:", [ray.get(counter.add.remote(k)) for k in (1, 2, 3)],
              "resources:", ray.cluster_resources())
    finally:
        ray.shutdown()
    # Ray's own processes (monitor, agents) log an import error from a trimmed module and carry on
    broken = [f.name for f in sorted(logs.glob("*.err")) if "Error" in f.read_text(errors="replace")]
    if broken:
        raise SystemExit(f"errors in Ray's logs {logs}: {broken}")
    frames = []
    if CLIP.exists():
        with av.open(str(CLIP)) as src:
            for frame in src.decode(video=0):
                frames.append(frame.to_ndarray(format="rgb24"))
                if len(frames) == 5:
                    break
    else:  # no shared/ data on this machine: synthetic frames
        frames = [np.random.default_rng(i).integers(0, 256, (144, 256, 3), dtype=np.uint8) for i in range(5)]
    with tf.TemporaryDirectory() as tmp:
        out = Path(tmp) / "x.mp4"
        with av.open(str(out), "w") as dst:
            stream = dst.add_stream("libx264", rate=25)
            stream.height, stream.width = frames[0].shape[:2]
            stream.pix_fmt = "yuv420p"
            for arr in frames:
                dst.mux(stream.encode(av.VideoFrame.from_ndarray(arr, format="rgb24")))
            dst.mux(stream.encode())
        with av.open(str(out)) as back:
            n = sum(1 for _ in back.decode(video=0))
        print(f"av: decoded {len(frames)} frames {frames[0].shape}, libx264 wrote {out.stat().st_size} B,"
              f" read back {n}")
    img = torch.rand(1, 3, 32, 32)
    print("kornia rgb->gray:", tuple(kornia.color.rgb_to_grayscale(img).shape))
    print("check ok")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=OUT_DIR / "cache", help="where the wheels are downloaded")
    ap.add_argument("--split-mib", type=float, default=45.0, help="split a larger archive into parts")
    ap.add_argument("--no-strip", action="store_true", help="keep the binaries' symbol tables")
    ap.add_argument("--keep-site", type=Path, help="also leave the trimmed site folder here")
    ap.add_argument("--verify-python", help="unpack the result and run --check with this interpreter")
    ap.add_argument("--check", action="store_true", help="only run the smoke test with this interpreter")
    args = ap.parse_args()
    if args.check:
        check()
        return
    wheels = download(args.cache, PINS)
    print("wheels:", ", ".join(f"{w.name} {mib(w.stat().st_size)}" for w in wheels),
          f"= {mib(sum(w.stat().st_size for w in wheels))}")
    missing = missing_requirements(wheels, PINS)
    print("requirements missing from image + bundle:", missing or "none")
    with tempfile.TemporaryDirectory(prefix="gpu_site_") as tmp:
        site = Path(args.keep_site or tmp)
        if site.exists() and args.keep_site:
            shutil.rmtree(site)
        unpack(wheels, site)
        print(f"unpacked: {mib(tree_size(site))}")
        for pattern, size in trim(site):
            if size:
                print(f"  trimmed {pattern:<40} {mib(size):>10}")
        if not args.no_strip:
            print(f"  stripped ELF symbol tables          {mib(strip(site)):>10}")
        print(f"trimmed: {mib(tree_size(site))}")
        OUT_DIR.mkdir(exist_ok=True)
        for old in OUT_DIR.glob(ARCHIVE.name + "*"):
            old.unlink()
        pack(site, ARCHIVE)
    size = ARCHIVE.stat().st_size
    parts = split(ARCHIVE, args.split_mib)
    print(f"{ARCHIVE.relative_to(ROOT)}: {mib(size)}")
    if len(parts) > 1:
        print(f"over {args.split_mib} MiB: split into {len(parts)} parts (more than one call's budget)")
    carry = [str(p.relative_to(ROOT)) for p in parts]
    print("carry:", carry)
    unpack_line = "bash benchmarks/gpu_run.sh first   # unpacks into /tmp/site with Python's lzma"
    print("unpack on the GPU machine:\n ", unpack_line)
    if args.verify_python:
        with tempfile.TemporaryDirectory(prefix="gpu_site_check_") as tmp:
            with tarfile.open(ARCHIVE) as archive:  # one part: split archives are not verified here
                archive.extractall(tmp, filter="fully_trusted")
            env = {**os.environ, "PYTHONPATH": f"{tmp}:{ROOT}", "RAY_USAGE_STATS_ENABLED": "0"}
            subprocess.run([args.verify_python, __file__, "--check"], env=env, check=True, cwd=ROOT)


if __name__ == "__main__":
    main()
