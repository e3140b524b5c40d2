"""Run every benchmark in bench/ in turn (`make bench`); each prints its table and writes bench/results/<name>.json."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ("bench_search.py", "bench_accel.py", "bench_mcu.py", "bench_fpga.py", "bench_import.py",
         "bench_float_import.py", "bench_soc.py", "bench_soc_concat.py", "bench_soc_synth.py")


def main() -> int:
    failed = []
    for name in ORDER:
        script = HERE / name
        if not script.is_file():
            continue
        print(f"== {name}", flush=True)
        if subprocess.run([sys.executable, str(script)], cwd=HERE.parent).returncode != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
