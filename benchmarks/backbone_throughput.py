"""Training and inference images/s of a backbone at its input size (default ResNet-18 @ 224).

Variants measured side by side in one run: fp32, fp32 + channels_last, and bf16 autocast +
channels_last (mixed precision; on CPUs without native bf16 it is usually slower, which the
numbers show). Training = forward + cross-entropy + backward + SGD step. Medians of timed steps
after warm-up. Not a test.

    python benchmarks/backbone_throughput.py --model resnet18 --threads 2 [--device cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch
import torch.nn.functional as F


def measure(model_name: str, device: str, batch: int, steps: int, channels_last: bool,
            bf16: bool) -> dict:
    import openfer

    model = openfer.create_model(model_name).to(device)
    size = model.meta.input_size
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    x = torch.randn(batch, 3, *size, device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, model.meta.num_classes, (batch,), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    autocast = torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16,
                              enabled=bf16)

    def sync():
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    def train_step():
        with autocast:
            loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def infer_step():
        with torch.inference_mode(), autocast:
            model(x)

    out = {}
    for name, step in (("train", train_step), ("inference", infer_step)):
        model.train(name == "train")
        for _ in range(2):
            step()
        sync()
        samples = []
        for _ in range(steps):
            start = time.perf_counter()
            step()
            sync()
            samples.append(time.perf_counter() - start)
        out[f"{name}_images_per_second"] = round(batch / statistics.median(samples), 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="resnet18")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = {"model": args.model, "device": args.device, "batch": args.batch,
               "threads": args.threads, "torch": torch.__version__,
               "machine": f"{platform.machine()}, {os.cpu_count()} cores"}
    for label, channels_last, bf16 in (("fp32", False, False), ("fp32_channels_last", True, False),
                                       ("bf16_channels_last", True, True)):
        results[label] = measure(args.model, args.device, args.batch, args.steps, channels_last,
                                 bf16)
        print(json.dumps({label: results[label]}), flush=True)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
