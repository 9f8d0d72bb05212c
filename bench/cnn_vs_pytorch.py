#!/usr/bin/python3
"""Train the CNN example with tapegrad and the same model with PyTorch, one after the other, and
print the per-epoch training time of both, their ratio, both test accuracies and both peak RSS.

    /usr/bin/python3 bench/cnn_vs_pytorch.py --epochs 1
    /usr/bin/python3 bench/cnn_vs_pytorch.py --epochs 5 --threads 2

Run it with /usr/bin/python3 (Debian's python3-torch); PyTorch is only ever used here, never by
the library. The PyTorch side is examples/cnn's model (cnn.h) layer for layer: Conv2d(1, 32, 3,
padding 1), BatchNorm2d, ReLU, MaxPool2d(2), Conv2d(32, 64, 3, padding 1), BatchNorm2d, ReLU,
MaxPool2d(2), Flatten, Dropout(0.25), Linear(3136, 128), ReLU, Dropout(0.25), Linear(128, 10),
PyTorch's default initialisation, cross-entropy, Adam lr 1e-3, batch 128, reshuffled every epoch,
NCHW float32 on the CPU (its convolutions run on oneDNN / mkldnn where the build has it). To give
PyTorch its fastest input path, the whole dataset is one in-memory tensor and batches are
index_select'ed (no DataLoader, no worker processes). Both sides read the loss and the
predictions of every batch, as the example does.

Each side runs in its own child process; its peak RSS comes from os.wait4() on that child.
"""
import argparse
import gzip
import os
import re
import struct
import subprocess
import sys
import tempfile
import time

DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_child(command):
    """Runs `command`, echoing its output; returns (stdout text, peak RSS in MB, exit status)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    for line in process.stdout:
        sys.stdout.write("    " + line)
        sys.stdout.flush()
        lines.append(line)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return "".join(lines), usage.ru_maxrss / 1024.0, process.returncode


# ---------------------------------------------------------------- the PyTorch side

def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, rank = struct.unpack(">HBB", data[:4])
    assert zero == 0 and dtype == 0x08, f"{path}: not a u8 IDX file"
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return dims, data[4 + 4 * rank:]


def find(directory, name):
    for candidate in (os.path.join(directory, name), os.path.join(directory, name + ".gz")):
        if os.path.exists(candidate):
            return candidate
    sys.exit(f"missing {name}(.gz) in {directory}")


def pytorch_worker(args):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    def load(prefix):
        dims, raw = read_idx(find(args.data, prefix + "-images-idx3-ubyte"))
        images = torch.frombuffer(bytearray(raw), dtype=torch.uint8).reshape(dims[0], 1, 28, 28)
        dims, raw = read_idx(find(args.data, prefix + "-labels-idx1-ubyte"))
        labels = torch.frombuffer(bytearray(raw), dtype=torch.uint8).long()
        return images.float().div(255), labels

    (train, train_labels), (test, test_labels) = load("train"), load("t10k")
    if args.train_limit:
        train, train_labels = train[:args.train_limit], train_labels[:args.train_limit]
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(args.dropout), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
        nn.Dropout(args.dropout), nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    mkldnn = torch.backends.mkldnn.is_available()
    print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"oneDNN {'available' if mkldnn else 'not available'}", flush=True)
    for epoch in range(1, args.epochs + 1):
        start = time.perf_counter()
        model.train()
        order = torch.randperm(train.shape[0])
        total, correct = 0.0, 0
        for b in range(0, train.shape[0], args.batch):
            index = order[b:b + args.batch]
            x, y = train.index_select(0, index), train_labels.index_select(0, index)
            optimizer.zero_grad()
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            optimizer.step()
            total += loss.item() * x.shape[0]
            correct += int((logits.argmax(1) == y).sum())
        train_seconds = time.perf_counter() - start
        start = time.perf_counter()
        model.eval()
        test_total, test_correct = 0.0, 0
        with torch.no_grad():
            for b in range(0, test.shape[0], args.batch):
                x, y = test[b:b + args.batch], test_labels[b:b + args.batch]
                logits = model(x)
                test_total += F.cross_entropy(logits, y).item() * x.shape[0]
                test_correct += int((logits.argmax(1) == y).sum())
        test_seconds = time.perf_counter() - start
        n, m = train.shape[0], test.shape[0]
        print(f"epoch {epoch}/{args.epochs}  train loss {total / n:.4f} acc {100 * correct / n:.2f}%  "
              f"test loss {test_total / m:.4f} acc {100 * test_correct / m:.2f}%  "
              f"{train_seconds:.1f} s (+ test {test_seconds:.1f} s)", flush=True)


# ---------------------------------------------------------------- both, side by side

EPOCH_LINE = re.compile(r"epoch (\d+)/\d+\s+train loss ([\d.]+) acc ([\d.]+)%\s+test loss ([\d.]+) "
                        r"acc ([\d.]+)%\s+([\d.]+) s \(\+ test ([\d.]+) s\)")


def parse(text):
    """(epoch, test accuracy %, train seconds, test seconds) per epoch line."""
    return [(int(m[1]), float(m[5]), float(m[6]), float(m[7])) for m in EPOCH_LINE.finditer(text)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="BLAS / intra-op threads for both (default: all cores)")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--dropout", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--train-limit", type=int, default=0,
                        help="train on the first N images only (0: all 60000)")
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--tapegrad", default=os.path.join(ROOT, "build", "examples", "cnn", "cnn"),
                        help="the built example (default: build/examples/cnn/cnn)")
    parser.add_argument("--only", choices=["tapegrad", "pytorch"], help="run one side only")
    parser.add_argument("--pytorch-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pytorch_worker:
        return pytorch_worker(args)

    print(f"{args.threads} thread(s), {args.epochs} epoch(s), load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="cnn-bench-") as out:
        if args.only != "pytorch":
            print(f"tapegrad: {args.tapegrad}")
            text, rss, code = run_child([args.tapegrad, "--epochs", str(args.epochs), "--batch",
                                         str(args.batch), "--lr", str(args.lr), "--dropout",
                                         str(args.dropout), "--seed", str(args.seed), "--threads",
                                         str(args.threads), "--train-limit", str(args.train_limit),
                                         "--data", args.data, "--out", out])
            if code != 0:
                sys.exit(f"tapegrad failed with exit status {code}")
            results["tapegrad"] = (parse(text), rss)
    if args.only != "tapegrad":
        print("pytorch:")
        worker = [sys.executable, os.path.abspath(__file__), "--pytorch-worker"] + \
                 [a for a in sys.argv[1:] if a != "--pytorch-worker"]
        text, rss, code = run_child(worker)
        if code != 0:
            sys.exit(f"the PyTorch worker failed with exit status {code}")
        results["pytorch"] = (parse(text), rss)

    print()
    if len(results) == 2:
        tg, pt = results["tapegrad"][0], results["pytorch"][0]
        print(f"{'epoch':>5}  {'tapegrad s':>10}  {'pytorch s':>9}  {'ratio':>6}  "
              f"{'tapegrad acc':>12}  {'pytorch acc':>11}")
        for a, b in zip(tg, pt):
            print(f"{a[0]:>5}  {a[2]:>10.1f}  {b[2]:>9.1f}  {b[2] / a[2]:>5.2f}x  {a[1]:>11.2f}%  "
                  f"{b[1]:>10.2f}%")
        mean_tg = sum(r[2] for r in tg) / len(tg)
        mean_pt = sum(r[2] for r in pt) / len(pt)
        print(f"mean training epoch: tapegrad {mean_tg:.1f} s, pytorch {mean_pt:.1f} s "
              f"-> pytorch time / tapegrad time = {mean_pt / mean_tg:.2f}")
        print(f"test accuracy after {len(tg)} epochs: tapegrad {tg[-1][1]:.2f}%, "
              f"pytorch {pt[-1][1]:.2f}%")
    for name, (rows, rss) in results.items():
        print(f"peak RSS {name}: {rss:.0f} MB")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
