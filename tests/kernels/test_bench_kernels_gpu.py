"""benchmarks/bench_kernels_gpu.py gets one shot on a GPU: its arguments, its no-GPU exit and its
correctness checks (run here on CPU through the interpreter, at tiny sizes) must work before that."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_kernels_gpu.py"


@pytest.fixture
def bench(monkeypatch):
    spec = importlib.util.spec_from_file_location("bench_kernels_gpu", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "DEVICE", "cpu")
    return module


def test_arguments(bench, tmp_path):
    args = bench.parse_args(["--out", str(tmp_path), "--quick", "--sweep", "--budget-s", "10"])
    assert args.out == tmp_path and args.quick and args.sweep and args.budget_s == 10.0
    with pytest.raises(SystemExit):
        bench.parse_args([])  # --out is required


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU exit")
def test_without_cuda_writes_json_and_fails(bench, tmp_path):
    assert bench.main(["--out", str(tmp_path / "out")]) == 1
    report = json.loads((tmp_path / "out" / "bench_kernels.json").read_text())
    assert "no CUDA device" in report["errors"][0]["error"]


def test_checks_pass_on_cpu_and_table_prints(bench, tmp_path, capsys):
    rep = bench.Report(tmp_path, bench.parse_args(["--out", str(tmp_path)]))
    rep.run("checks", {"kernel": "attention"}, bench.check_attention, torch.float32, 1, 1, 20, 80, 1)
    rep.run("checks", {"kernel": "attention"}, bench.check_attention, torch.float16, 1, 2, 9, 64, 2)
    rep.run("checks", {"kernel": "masking"}, bench.check_masking, torch.float32, torch.float32, 3,
            2, 20, 24, 16, 5)
    rep.run("checks", {"kernel": "broken"}, lambda: 1 / 0)  # a failing case is recorded, not raised
    rep.save()
    data = json.loads(rep.path.read_text())
    assert [c.get("ok") for c in data["checks"]] == [True, True, True, None]
    assert "ZeroDivisionError" in data["checks"][3]["error"] and len(data["errors"]) == 1
    bench.print_table(data)
    assert "checks: 3/4 passed" in capsys.readouterr().out
