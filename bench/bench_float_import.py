"""Float models brought by a user (PyTorch, exported to torch.export and ONNX), built as a user builds them.

Each network uses ops a float model import must understand beyond plain conv / ReLU: ReLU6 inverted residuals
(MobileNetV2), a concatenation of branches (Inception), hard swish and a squeeze-and-excitation gate (MobileNetV3),
SiLU, leaky ReLU, ShuffleNetV2's channel split and shuffle, SqueezeNet's ceil-mode max pools and an average over
the taps inside a padded window. Each is trained
for a few seconds on sklearn's 8x8 digits, exported to ``.pt2`` and ``.onnx``, and built with
``tinycompile build model --calib calib.npz`` for cortex-m4 (both formats) and the accelerator (N = 8); the table
gives each build's verdict (bit-exact against the integer reference), its instructions or cycles, and the float and
int8 test accuracy on the held-out calibration inputs. Each ONNX export is also quantized by ONNX Runtime's static
quantizer (QDQ and operator forms, per-channel int8 weights, the same training inputs) and built with the model's
own quantization, beside ONNX Runtime running it on the same inputs. A VWW-shaped MobileNetV1 0.25 (96x96x3,
ReLU6, random weights: cycles do not depend on them) is built for cortex-m4 beside ST's published MLPerf Tiny figure.

Run: ``.venv/bin/python bench/bench_float_import.py`` -> a table, bench/results/float_import.json (about 20 minutes;
``--only NAME`` reruns the networks whose name holds NAME and keeps the other rows).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tinycompile.tasks import load_task  # noqa: E402

F = nn.functional
VWW_PUBLISHED = ("ST X-CUBE-AI, 88.9 ms @ 120 MHz (MLPerf Tiny v1.2)", 10_700_000)


class InvertedResidual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16)
        self.expand, self.bn1 = nn.Conv2d(16, 48, 1, bias=False), nn.BatchNorm2d(48)
        self.dw, self.bn2 = nn.Conv2d(48, 48, 3, padding=1, groups=48, bias=False), nn.BatchNorm2d(48)
        self.project, self.bn3 = nn.Conv2d(48, 16, 1, bias=False), nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu6(self.bn0(self.stem(x)))
        y = F.relu6(self.bn2(self.dw(F.relu6(self.bn1(self.expand(x))))))
        return self.fc((x + self.bn3(self.project(y))).mean((2, 3)))


class Inception(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 8, 1), nn.Conv2d(1, 8, 3, padding=1)
        self.c = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
        self.mix, self.fc = nn.Conv2d(24, 32, 3, stride=2, padding=1), nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([F.relu(self.a(x)), F.relu(self.b(x)), F.relu(self.c(x))], dim=1)
        return self.fc(F.relu(self.mix(x)).mean((2, 3)))


class MobileNetV3Block(nn.Module):
    """Hard swish and a squeeze-and-excitation gate (pool, two dense layers, hard sigmoid) scaling each channel."""

    def __init__(self) -> None:
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.dw, self.bn1 = nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16)
        self.squeeze, self.excite = nn.Linear(16, 8), nn.Linear(8, 16)
        self.pw, self.fc = nn.Conv2d(16, 32, 1), nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.hardswish(self.bn1(self.dw(F.hardswish(self.bn0(self.stem(x))))))
        x = x * F.hardsigmoid(self.excite(F.relu(self.squeeze(x.mean((2, 3))))))[:, :, None, None]
        return self.fc(F.hardswish(self.pw(x)).mean((2, 3)))


class Activated(nn.Module):
    """conv -> activation -> depthwise -> activation -> pool -> dense, for one activation function."""

    def __init__(self, act: nn.Module) -> None:
        super().__init__()
        self.act = act
        self.conv, self.bn0 = nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.dw, self.bn1 = nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.BatchNorm2d(16)
        self.pw, self.fc = nn.Conv2d(16, 32, 1), nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn1(self.dw(self.act(self.bn0(self.conv(x))))))
        return self.fc(self.act(self.pw(x)).mean((2, 3)))


class ShuffleNetV2(nn.Module):
    """ShuffleNetV2's two units: the stride-2 one (both branches, concatenated, shuffled) and the basic one (the
    channels split, one half through 1x1 / depthwise / 1x1, concatenated, shuffled)."""

    def __init__(self) -> None:
        super().__init__()

        def branch(cin: int, cout: int, stride: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(cin, cout, 1), nn.BatchNorm2d(cout), nn.ReLU(),
                                 nn.Conv2d(cout, cout, 3, stride, 1, groups=cout), nn.BatchNorm2d(cout),
                                 nn.Conv2d(cout, cout, 1), nn.BatchNorm2d(cout), nn.ReLU())

        self.stem, self.bn = nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16)
        self.down_left = nn.Sequential(nn.Conv2d(16, 16, 3, 2, 1, groups=16), nn.BatchNorm2d(16), nn.Conv2d(16, 16, 1),
                                       nn.ReLU())
        self.down_right, self.unit = branch(16, 16, 2), branch(16, 16, 1)
        self.fc = nn.Linear(32, 10)

    @staticmethod
    def shuffle(x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.stem(x)))
        x = self.shuffle(torch.cat([self.down_left(x), self.down_right(x)], dim=1))
        kept, changed = x.chunk(2, dim=1)
        x = self.shuffle(torch.cat([kept, self.unit(changed)], dim=1))
        return self.fc(x.mean((2, 3)))


class SqueezeNet(nn.Module):
    """SqueezeNet 1.1's shape: ceil-mode 3x3 stride-2 max pools (their last window leaves the map), fire modules (a 1x1
    squeeze, 1x1 and 3x3 expands concatenated), an average that skips its padded taps (ONNX's default), and a 1x1
    classifier averaged over the map."""

    def __init__(self) -> None:
        super().__init__()

        def fire(cin: int, squeeze: int, expand: int) -> nn.ModuleList:
            return nn.ModuleList([nn.Conv2d(cin, squeeze, 1), nn.Conv2d(squeeze, expand, 1),
                                  nn.Conv2d(squeeze, expand, 3, padding=1)])

        self.stem, self.fire1, self.fire2 = nn.Conv2d(1, 16, 3, padding=1), fire(16, 8, 16), fire(32, 8, 16)
        self.classifier = nn.Conv2d(32, 10, 1)

    @staticmethod
    def run(fire: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        s = F.relu(fire[0](x))
        return torch.cat([F.relu(fire[1](s)), F.relu(fire[2](s))], dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.stem(x)), 3, 2, ceil_mode=True)  # 8 x 8 -> 4 x 4 (floor mode: 3 x 3)
        x = F.max_pool2d(self.run(self.fire1, x), 3, 2, ceil_mode=True)  # 4 x 4 -> 2 x 2
        x = F.avg_pool2d(self.run(self.fire2, x), 3, 1, padding=1, count_include_pad=False)
        return self.classifier(x).mean((2, 3))


def mobilenet_v1(alpha: float = 0.25, classes: int = 2) -> nn.Module:
    """MobileNetV1 as MLPerf Tiny's visual wake words model shapes it (96x96x3 input, width 0.25, ReLU6)."""
    def c(n: int) -> int:
        return max(8, int(n * alpha))

    def block(cin: int, cout: int, stride: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin), nn.ReLU6(),
                nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6()]

    layers: list[nn.Module] = [nn.Conv2d(3, c(32), 3, 2, 1, bias=False), nn.BatchNorm2d(c(32)), nn.ReLU6()]
    widths = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2),
              *[(512, 512, 1)] * 5, (512, 1024, 2), (1024, 1024, 1)]
    for cin, cout, stride in widths:
        layers += block(c(cin), c(cout), stride)
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c(1024), classes), nn.Softmax(-1))


def trained(net: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int = 15) -> nn.Module:
    """A few seconds of Adam on the digits training split."""
    opt = torch.optim.Adam(net.parameters(), lr=0.01)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(xt), generator=gen).split(64):
            opt.zero_grad()
            F.cross_entropy(net(xt[idx]), yt[idx]).backward()
            opt.step()
    return net.eval()


def export(net: nn.Module, example: torch.Tensor, folder: Path, name: str) -> dict[str, Path]:
    paths = {"torch": folder / f"{name}.pt2", "onnx": folder / f"{name}.onnx"}
    torch.export.save(torch.export.export(net, (example,)), str(paths["torch"]))
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated in torch 2.9+, but still works
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (example,), str(paths["onnx"]), dynamo=False, input_names=["x"], output_names=["y"])
    return paths


def quantized(source: Path, x: np.ndarray, out: Path, form: str = "QDQ") -> Path:
    """``source`` quantized by ONNX Runtime (``form``: QDQ or QOperator; per-channel int8 weights, int8 activations)
    on inputs ``x``."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter({"x": xi[None]} for xi in x)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.it, None)

    quantize_static(str(source), str(out), Reader(), quant_format=getattr(QuantFormat, form), per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return out


def build(model: Path, calib: Path, target: str, out: Path) -> dict:
    """One `tinycompile build` as a user runs it; the table's row (or the failure)."""
    cmd = [sys.executable, "-m", "tinycompile.cli", "build", str(model), "--target", target, "--calib", str(calib),
           "-o", str(out), "--vectors", "16"]
    cmd += ["--array", "8"] if target == "fpga" else ["--codegen", "llvm"]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    row: dict = {"seconds": round(time.perf_counter() - start, 1), "exit_code": proc.returncode}
    if not (out / "report.json").is_file():
        return {**row, "error": (proc.stderr.strip().splitlines() or ["no report"])[-1]}
    r = json.loads((out / "report.json").read_text())
    agree = r.get("float_vs_int8", {})
    row.update(bit_exact=r["bit_exact"], verdict=r.get("verdict"), unit=r["unit"], count=r["latency"]["measured"],
               predicted=r["latency"]["predicted"], arena_bytes=r["memory"]["arena_bytes"],
               float_accuracy=agree.get("float_accuracy"), int8_accuracy=agree.get("int8_accuracy"),
               agreement=agree.get("agreement"), samples=agree.get("samples"),
               host_layers=[x["index"] for x in r["layers"] if str(x["ran_on"]).startswith("host")],
               ops=[x["op"] for x in r["layers"]])
    ort = r.get("oracles", {}).get("onnxruntime")
    if ort:
        row["onnxruntime"] = {k: ort[k] for k in ("exact_values", "max_step_difference", "top1_agreement", "inputs")}
        row["notes"] = (f"vs ONNX Runtime: {ort['exact_values']:.0%} of values equal, <= {ort['max_step_difference']} "
                        f"step, top-1 {ort['top1_agreement']:.0%}")
    return row


def table(rows: list[dict]) -> Table:
    t = Table(title="Float models imported (torch.export / ONNX), quantized here or by ONNX Runtime (QDQ), built "
                    "bit-exact")
    for col in ("model", "format", "target", "verdict", "instructions / cycles", "float acc", "int8 acc", "notes"):
        t.add_column(col, justify="right" if col in ("instructions / cycles", "float acc", "int8 acc") else "left")
    for r in rows:
        if "error" in r:
            t.add_row(r["model"], r["format"], r["target"], f"[red]{r['error'][:70]}[/]", "", "", "", "")
            continue
        verdict = "bit-exact" if r["bit_exact"] and r["verdict"] == "pass" else "[red]FAILED[/]"
        count = f"{r['count']:,.0f} {'cyc' if r['unit'] == 'cycles' else 'instr'}"
        acc = [f"{r[k]:.1%}" if r.get(k) is not None else "-" for k in ("float_accuracy", "int8_accuracy")]
        notes = r.get("notes", "") or (f"host layers {r['host_layers']}" if r["host_layers"] else "")
        t.add_row(r["model"], r["format"], r["target"], verdict, count, *acc, notes)
    return t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only the networks whose name holds this text (and not the VWW model); "
                                       "the other rows stay as the last run wrote them")
    args = parser.parse_args()
    task = load_task("digits")
    xtr, ytr = task.x_train.astype(np.float32), task.y_train.astype(np.int64)
    nets = {"MobileNetV2 block (ReLU6)": InvertedResidual, "Inception (concat)": Inception,
            "MobileNetV3 block (SE gate)": MobileNetV3Block, "hard swish": lambda: Activated(nn.Hardswish()),
            "SiLU": lambda: Activated(nn.SiLU()), "leaky ReLU": lambda: Activated(nn.LeakyReLU(0.1)),
            "ShuffleNetV2 (split, shuffle)": ShuffleNetV2, "SqueezeNet (ceil-mode and padded pools)": SqueezeNet}
    if args.only:
        nets = {name: make for name, make in nets.items() if args.only in name}
    out = ROOT / "bench" / "results" / "float_import.json"
    kept = [r for r in json.loads(out.read_text())["rows"] if r["model"] not in nets] if args.only and out.is_file() else []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        calib = folder / "digits.npz"  # the build holds out its last 20%: exactly the test split
        m = min(len(task.x_test), len(xtr) // 4)
        np.savez(calib, x=np.concatenate([xtr[: 4 * m], task.x_test[:m]]),
                 y=np.concatenate([ytr[: 4 * m], task.y_test[:m]]))
        for name, make in nets.items():
            print(f"{name}: training, exporting, building ...", file=sys.stderr, flush=True)
            torch.manual_seed(0)  # the same initial weights in every run
            net = trained(make(), xtr, ytr)
            paths = export(net, torch.from_numpy(xtr[:1]), folder, name.split()[0].lower())
            for form in ("QDQ", "QOperator"):
                qpath = folder / f"{paths['onnx'].stem}_{form}.onnx"
                paths[f"onnx-{form}"] = quantized(paths["onnx"], xtr[:256], qpath, form)
            for fmt, target in (("torch", "cortex-m4"), ("onnx", "cortex-m4"), ("torch", "fpga"),
                                ("onnx-QDQ", "cortex-m4"), ("onnx-QDQ", "fpga"), ("onnx-QOperator", "cortex-m4")):
                row = build(paths[fmt], calib, target, folder / f"{paths[fmt].stem}-{fmt}-{target}")
                rows.append({"model": name, "format": fmt, "target": target, **row})
        if args.only:
            rows = kept + rows
        else:
            rows.append(vww_row(folder))
    Console(width=170).print(table(rows))
    tmp_out = out.with_suffix(".json.tmp")
    command = "python bench/bench_float_import.py" + (f" --only '{args.only}'" if args.only else "")
    tmp_out.write_text(json.dumps({"date": str(date.today()), "command": command, "rows": rows}, indent=1) + "\n")
    tmp_out.replace(out)
    return 1 if any("error" in r or not r["bit_exact"] for r in rows) else 0


def vww_row(folder: Path) -> dict:
    """The VWW-shaped MobileNetV1 built for cortex-m4, beside the published figure."""
    print("VWW-shaped MobileNetV1 0.25: building ...", file=sys.stderr, flush=True)
    torch.manual_seed(0)
    vww = mobilenet_v1().eval()
    x = np.random.default_rng(0).uniform(0, 1, (100, 3, 96, 96)).astype(np.float32)
    np.savez(folder / "vww.npz", x=x)
    paths = export(vww, torch.from_numpy(x[:1]), folder, "vww")
    row = build(paths["onnx"], folder / "vww.npz", "cortex-m4", folder / "vww-onnx-cortex-m4")
    row.update(float_accuracy=None, int8_accuracy=None, notes=f"published {VWW_PUBLISHED[1]:,} cycles ({VWW_PUBLISHED[0]})")
    return {"model": "VWW MobileNetV1 0.25 (random weights)", "format": "onnx", "target": "cortex-m4", **row}


if __name__ == "__main__":
    sys.exit(main())
