"""The PyTorch half of `make bench`: the reference U-Net (tools/fixtures/make-unet-fixture.py) with our
weights (from `ddpm export`), checked against Burn's output on the probe, then timed on the CPU
with the same number of threads, its FLOPs counted, and exported to ONNX for onnxruntime-web.

    python tools/bench/pytorch.py --safetensors model.safetensors --threads 2 --onnx unet.onnx --json torch.json
"""
import argparse
import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import safe_open
from torch.utils.flop_counter import FlopCounterMode


# The reference U-Net, from tools/fixtures/make-unet-fixture.py: a script's name (kebab-case, as
# every file in tools/), so loaded by path rather than imported by name.
_spec = importlib.util.spec_from_file_location(
    "make_unet_fixture", Path(__file__).resolve().parents[1] / "fixtures" / "make-unet-fixture.py")
reference = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = reference
_spec.loader.exec_module(reference)
Unet, burn_name = reference.Unet, reference.burn_name


def load(path):
    with safe_open(path, "pt") as f:
        description = json.loads(f.metadata()["ddpm.description"])
        c = description["unet"]
        model = Unet(dim=c["dim"], dim_mults=tuple(c["dim_mults"]), channels=c["channels"],
                     resnet_block_groups=c["resnet_block_groups"], use_convnext=c["block"] == "convnext",
                     convnext_mult=c["convnext_mult"], heads=c["attn_heads"], dim_head=c["attn_dim_head"],
                     num_classes=c["num_classes"])
        state = {k: f.get_tensor(burn_name(k)) for k in model.state_dict()}
    model.load_state_dict(state)
    return model.eval(), description


def timed(runs, fn):
    fn()
    ms = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - start) * 1000)
    ms.sort()
    return {"median": statistics.median(ms), "min": ms[0], "max": ms[-1], "runs": runs}


def linear_schedule(T=1000):
    betas = torch.linspace(1e-4, 0.02, T)
    return torch.cumprod(1 - betas, 0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--safetensors", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--batches", default="1,16")
    ap.add_argument("--train-batches", default="16,32")
    ap.add_argument("--onnx")
    ap.add_argument("--json", required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, description = load(args.safetensors)
    null = description["unet"]["num_classes"]

    probe = json.loads(Path(args.safetensors).with_suffix(".probe.json").read_text())
    x = torch.tensor(probe["x"]).reshape(probe["shape"])
    with torch.no_grad():
        eps = model(x, torch.tensor(probe["t"], dtype=torch.float32), torch.tensor(probe["labels"]))
    burn_diff = (eps.flatten() - torch.tensor(probe["eps"])).abs().max().item()
    if burn_diff > 1e-3:
        sys.exit(f"the PyTorch copy disagrees with Burn on the probe: max |diff| = {burn_diff}")

    def inputs(batch):
        return (torch.randn(batch, 1, 28, 28), torch.full((batch,), 500.0), torch.full((batch,), null))

    forward = {}
    with torch.inference_mode():
        for batch in map(int, args.batches.split(",")):
            xb = inputs(batch)
            forward[str(batch)] = timed(args.runs, lambda: model(*xb))
        with FlopCounterMode(display=False) as counter:
            model(*inputs(1))
    flops = counter.get_total_flops()

    # Algorithm 1 as `ddpm train` runs it: Adam, clipping at norm 1, EMA, label dropout.
    train_model, _ = load(args.safetensors)
    train_model.train()
    ema = [p.detach().clone() for p in train_model.parameters()]
    opt = torch.optim.Adam(train_model.parameters(), lr=1e-4)
    alphas_cumprod = linear_schedule()
    def trainer(b):
        x0 = torch.randn(b, 1, 28, 28).clamp(-1, 1)
        labels = torch.arange(b) % 10

        def step():
            t = torch.randint(0, 1000, (b,))
            noise = torch.randn_like(x0)
            a = alphas_cumprod[t].view(-1, 1, 1, 1)
            x_t = a.sqrt() * x0 + (1 - a).sqrt() * noise
            y = torch.where(torch.rand(b) < 0.1, torch.full_like(labels, null), labels)
            loss = F.mse_loss(train_model(x_t, t.float(), y), noise)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(train_model.parameters(), 1.0)
            opt.step()
            with torch.no_grad():
                torch._foreach_lerp_(ema, [p.detach() for p in train_model.parameters()], 0.001)
            loss.item()

        return step

    by_batch = {}
    for b in map(int, args.train_batches.split(",")):
        train_step = timed(args.runs, trainer(b))
        by_batch[str(b)] = {"batch": b, "step_ms": train_step, "images_per_s": b * 1000 / train_step["median"]}
    report = {
        "torch": torch.__version__, "threads": torch.get_num_threads(), "params": sum(p.numel() for p in model.parameters()),
        "max_abs_diff_vs_burn": burn_diff, "flops_forward_batch1": flops, "forward_ms": forward,
        "train": next(iter(by_batch.values())), "train_by_batch": by_batch,
    }
    if args.onnx:
        with torch.no_grad():
            torch.onnx.export(model, inputs(2), args.onnx, input_names=["x", "t", "labels"], output_names=["eps"],
                              dynamic_axes={"x": {0: "batch"}, "t": {0: "batch"}, "labels": {0: "batch"}, "eps": {0: "batch"}},
                              opset_version=17, dynamo=False)
        report["onnx"] = args.onnx
    Path(args.json).write_text(json.dumps(report, indent=1))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
